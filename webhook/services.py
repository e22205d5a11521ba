"""What every request needs, made once per process: settings, store, signer, limiter, templates, assets.

Building these per request would cost more than the request itself (the Signer derives one serializer per
purpose; the Store owns the connection pool), so `create_app` makes one `Services` and routes reach it
through `services()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from gettext import NullTranslations
from pathlib import Path
from typing import Any

from flask import current_app, request, url_for
from jinja2 import Environment

import portal.balances.stored  # noqa: F401 - the derived tables follow every change (portal/store/derived.py)
import portal.staff.receiptlines  # noqa: F401 - the receipt lines too
from portal.build.pages import PageRenderer
from portal.core.config import Settings
from portal.core.i18n import html_lang, language_for, translations_for
from portal.core.signing import CanonicalTimedSerializer, Signer
from portal.core.templating import Assets, load_assets, make_environment
from portal.mail.transport import Transport, transport_from_url
from portal.publish.documents import served_documents
from portal.publish.targets import Target
from portal.store.database import Store
from portal.store.eventlog import EventLog
from portal.store.ratelimits import DatabaseRateLimitStore
from webhook.ratelimit import Limit, RateLimiter

# How long the "email me a fresh link" form stays valid, and a signed /files/ address (folder targets).
FRESH_FORM_SECONDS = 3600
FILE_LINK_SECONDS = 300


@dataclass
class Services:
    settings: Settings
    store: Store
    events: EventLog  # the links' and beacons' hot path: lookup + guarded insert through the driver
    signer: Signer
    limiter: RateLimiter
    templates: Environment
    assets: Assets
    limits: dict[str, Limit]
    site_dir: Path | None  # the built site served in development (None: pages live elsewhere)
    documents: Target  # where /d/ finds documents (portal.publish.documents.served_documents)
    docs_root: Path | None  # where docs/<customer_key>/ folders are, for folder targets
    fresh: CanonicalTimedSerializer  # the "email me a fresh link" form
    files: CanonicalTimedSerializer  # short-lived /files/ addresses
    _mailer: Transport | None = field(default=None, repr=False)
    # One template environment per customer language, made on first use (portal/core/i18n.py): a language is
    # never installed on the shared `templates`, which concurrent requests render with.
    _languages: dict[str, Environment] = field(default_factory=dict, repr=False)
    _pdf_renderer: PageRenderer | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings, config: dict[str, Any], site_dir: str | Path | None) -> Services:
        # Same order as portal.core.signing.Signer: itsdangerous signs with the LAST key and accepts all of them.
        secrets = [*reversed(settings.secret_key_fallbacks), settings.secret_key]
        site = Path(site_dir).resolve() if site_dir else None
        documents = served_documents(settings, site)
        limits = {name: Limit.parse(config[f"RATE_LIMIT_{name.upper()}"]) for name in ("ip", "token", "fresh")}
        store = Store(settings.database_url)
        return cls(
            settings=settings,
            store=store,
            events=EventLog(store),
            signer=Signer(settings),
            limiter=_limiter(config, store),
            templates=make_environment(settings),
            assets=load_assets(settings),
            limits=limits,
            site_dir=site,
            documents=documents,
            docs_root=documents.local_root,
            fresh=CanonicalTimedSerializer(secrets, salt="fresh"),
            files=CanonicalTimedSerializer(secrets, salt="file"),
        )

    def templates_for(self, locale: str | None) -> Environment:
        """The environment rendering in the language of a customer's `locale` (None: as written, English)."""
        if locale is None:
            return self.templates
        language = language_for(locale, self.settings.default_locale)
        env = self._languages.get(language)
        if env is None:  # two threads may both make one; either is right, one is kept
            env = self._languages.setdefault(language, make_environment(self.settings, language))
        return env

    @property
    def mailer(self) -> Transport:
        """The mail transport, made on first use (SES imports boto3; most requests never mail)."""
        if self._mailer is None:
            self._mailer = transport_from_url(self.settings.mail_url)
        return self._mailer


    @property
    def pdf_renderer(self) -> PageRenderer:
        """The renderer of the PDFs /d/ generates on first download, made on first use (it loads the fonts)."""
        if self._pdf_renderer is None:
            self._pdf_renderer = PageRenderer(self.settings, self.signer, self.assets)
        return self._pdf_renderer


def _limiter(config: dict[str, Any], store: Store) -> RateLimiter:
    """The rate limiter over the configured counters (see DEFAULTS in webhook/__init__.py)."""
    if config.get("RATE_LIMIT_STORE") is not None:
        return RateLimiter(config["RATE_LIMIT_STORE"])
    backend = str(config.get("RATE_LIMIT_BACKEND") or "memory").lower()
    if backend == "memory":
        return RateLimiter()
    if backend == "database":
        # Windows shared across machines are counted on the wall clock (monotonic clocks differ per machine).
        return RateLimiter(DatabaseRateLimitStore(store), clock=time.time)
    raise ValueError(f"WEBHOOK_RATE_LIMIT_BACKEND: {backend!r} is not one of memory, database")


def services() -> Services:
    return current_app.extensions["portal"]


def client_ip() -> str:
    """The client address as the WSGI server sees it (after ProxyFix when the app sits behind proxies)."""
    return (request.remote_addr or "")[:64]


def user_agent() -> str:
    return request.headers.get("User-Agent", "")[:512]


def translations(locale: str | None) -> NullTranslations:
    """A customer's translations (portal/core/i18n.py), falling back to the configured default locale's."""
    return translations_for(locale, services().settings.default_locale)


def render(template: str, http_status: int = 200, *, locale: str | None = None, **context: Any
           ) -> tuple[str, int, dict[str, str]]:
    """Render one of the webhook's own pages (templates/webhook/, templates/errors/) with the site's CSS.
    `locale`: the customer's, whose language the page is in (its `lang` too); None: as written (English)."""
    s = services()
    css = url_for("site.asset", name=s.assets.urls["portal.css"].removeprefix("assets/"))
    html = s.templates_for(locale).get_template(template).render(
        css_url=css, company={"name": s.settings.company_name, "support_email": s.settings.support_email},
        lang=html_lang(locale, s.settings.default_locale) if locale is not None else "en", **context)
    return html, http_status, {"Content-Type": "text/html; charset=utf-8"}
