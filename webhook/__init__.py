"""The webhook: the few things a static page cannot do (signed links, read receipts, document downloads).

Production: `gunicorn "webhook:create_app()"` (settings from portal.toml and PORTAL_* variables).
Development: `portal serve`, which also serves the built site from `site_dir` on the same port.
See docs/webhook.md for the routes, the receipts and the deployment notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.core.config import Settings, load_settings, warn_if_insecure
from webhook import errors, health, jobs, security, static
from webhook.customer import disputes, files, links, methods, payments, promises, selfservice, unsubscribe
from webhook.logs import configure_logging
from webhook.services import Services
from webhook.staff import overview as staff

# Defaults for the web layer only (the portal's own settings live in portal.core.config). Each can be set from
# the environment as WEBHOOK_<NAME>, e.g. WEBHOOK_RATE_LIMIT_IP=1200/60, or passed as `config`.
DEFAULTS: dict[str, Any] = {
    "RATE_LIMIT_IP": "300/60",  # requests per client address per window, all public routes together
    "RATE_LIMIT_TOKEN": "30/60",  # uses of one token per window (a link, a beacon, a document)
    "RATE_LIMIT_FRESH": "3/3600",  # "email me a fresh link" submissions per form per window
    # Where the counters live: "memory" (each process its own: right for one machine) or "database" (the store:
    # one budget across workers and machines, e.g. behind a load balancer or on Lambda; portal/store/ratelimits.py).
    "RATE_LIMIT_BACKEND": "memory",
    "RATE_LIMIT_STORE": None,  # any ratelimit.RateLimitStore (e.g. Redis); wins over RATE_LIMIT_BACKEND
    "PROXY_FIX": 0,  # number of trusted proxies in front (X-Forwarded-For/-Proto); 0: trust none
    "LOG_LEVEL": "INFO",
    "MAX_CONTENT_LENGTH": 64 * 1024,  # the routes here take tiny forms; refuse large bodies early
}


def create_app(settings: Settings | None = None, site_dir: str | Path | None = None,
               config: Mapping[str, Any] | None = None, *, warn: bool = True) -> Flask:
    """Make the webhook app. `settings` None: read them (portal.toml < PORTAL_* variables).

    `site_dir`: a built site to serve under /c/ and /assets/ (development). Nothing touches the database
    here, so workers forked after this call (gunicorn --preload) do not share connections. The schema is
    not migrated either: run `portal db upgrade` before starting workers. `warn` False: the caller already
    printed the insecure-setting warnings (the `portal` command line does when it loads the settings).
    """
    settings = settings or load_settings()
    if warn:
        warn_if_insecure(settings)
    app = Flask(__name__, static_folder=None, template_folder=None)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("WEBHOOK")
    if config:
        app.config.update(config)
    configure_logging(app.config["LOG_LEVEL"])
    if app.config["PROXY_FIX"]:
        hops = int(app.config["PROXY_FIX"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.extensions["portal"] = Services.create(settings, app.config, site_dir)
    security.init_app(app)
    errors.init_app(app)
    jobs.init_app(app)  # one background runner, before the routes that submit to it
    for blueprint in (links.bp, files.bp, static.bp, health.bp, unsubscribe.bp, promises.bp):
        app.register_blueprint(blueprint)
    payments.init_app(app)
    methods.init_app(app)
    disputes.init_app(app)
    selfservice.init_app(app)
    staff.init_app(app)
    return app
