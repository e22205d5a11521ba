"""Settings: built-in defaults < portal.toml < PORTAL_* environment variables, validated once.

Secrets (the signing key, Stripe keys) are read from the environment only, never from portal.toml, so a
config file can be committed or shared without leaking them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies

from portal.core.config_checks import validate_mail as _validate_mail
from portal.core.config_checks import validate_promises as _validate_promises
from portal.core.errors import ConfigError

log = logging.getLogger(__name__)

DEV_SECRET_KEY = "dev-insecure-secret-do-not-use-in-production"
CONFIG_FILE = "portal.toml"
DEFAULT_PRIVATE_FOLDER = "private"
# What the site serves under a target (pages, assets, documents reached through presigned URLs).
SITE_PREFIXES = ("c", "assets", "docs")

# Keys that may only come from the environment.
SECRET_KEYS = {"secret_key", "secret_key_fallbacks", "stripe_secret_key", "stripe_webhook_secret"}
# Stripe's own variable names are honoured, as every Stripe integration does.
# The same shape the export reader accepts: these go into mail headers.
ENV_ALIASES = {"stripe_secret_key": "STRIPE_SECRET_KEY", "stripe_webhook_secret": "STRIPE_WEBHOOK_SECRET"}


def is_s3_url(location: str) -> bool:
    """Whether a configured location (target, private_target) names S3 (`s3://bucket/prefix`) rather than a folder.
    The one test of that form: validation below uses it, and portal.publish.targets.choose_target turns a location
    into the storage behind it, so nothing else asks which backend it talks to."""
    return location.startswith("s3://")


@dataclass(frozen=True)
class Settings:
    secret_key: str = DEV_SECRET_KEY
    # Older secrets still accepted when verifying tokens (rotation); newest first, comma-separated in env.
    secret_key_fallbacks: tuple[str, ...] = ()
    database_url: str = "sqlite:///portal.db"
    site_url: str = "http://127.0.0.1:8000"
    webhook_url: str = ""  # empty: same as site_url
    target: str = "build"
    # Where `portal build` writes by default and where the webhook re-renders a customer after a payment
    # or a dispute before publishing the changed files to `target`.
    build_dir: str = "build"
    # Private files (dispute attachments, under disputes/): a folder no web server serves, or s3://bucket/prefix
    # outside what the CDN serves. Empty: the folder `private` for a folder target, the target itself for an
    # S3 target (its disputes/ prefix; the CloudFront of infra/template.yaml reads only c/* and assets/*).
    private_target: str = ""
    mail_url: str = "outbox:outbox"
    link_ttl_days: int = 60
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    # Payments (docs/payments.md). Partial payments of one invoice, and the smallest part (minor units).
    partial_payments: bool = True
    partial_minimum: int = 0
    # Per method, in basis points of the amount paid (100 = 1%): a discount for bank (ACH) payments, and a
    # card surcharge. Card surcharging is regulated (network caps, US state rules, disclosure): it stays 0
    # (off) unless you have checked that you may charge it.
    ach_discount_bps: int = 0
    card_fee_bps: int = 0
    # Autopay (docs/autopay.md): the advance notice before each debit (days), how many times a failed debit is
    # tried again and how many days apart, before it is reported to the collector.
    autopay_notice_days: int = 3
    autopay_retries: int = 2
    autopay_retry_days: int = 3
    # Data defaults and presentation.
    default_currency: str = "USD"
    default_locale: str = "en_US"
    company_name: str = "Example Supplies Inc."
    support_email: str = "ar@example.com"
    # Invoices in another currency than their customer's are refused unless this is on.
    allow_foreign_currency: bool = False
    theme_dir: str = ""  # a folder of templates that override the built-in ones
    build_workers: int = 0  # 0: one per CPU
    render_pdfs: bool = True  # render a PDF for invoices without a supplied one, and for statements
    # What the PDFs show besides the data (docs/documents.md). Multi-line texts: one line per line.
    company_address: str = ""
    company_tax_id: str = ""
    company_logo: str = ""  # a PNG or JPEG file, printed 14 mm high at the top left
    remit_to: str = ""  # where to send a cheque
    bank_details: str = ""  # for bank transfers: bank, account holder, IBAN/BIC or routing and account number
    font_dir: str = ""  # a folder of the PDF fonts (portal/build/fonts.py); empty: the system's Debian packages
    aging_buckets: tuple[int, ...] = (30, 60, 90)
    # Email (docs/email.md). Empty `mail_from`: mail is sent from `support_email`.
    mail_from: str = ""
    ar_inbox: str = ""  # where the daily digest goes for customers without a collector; empty: support_email
    mail_attempts: int = 3  # tries per message on transient SMTP errors (4xx, connection lost)
    mail_retry_delay_ms: int = 2000  # first wait between tries; doubles each time
    reminder_days_before_due: tuple[int, ...] = (3,)
    reminder_days_overdue: tuple[int, ...] = (1, 15, 30)
    reminder_unopened_days: int = 7  # 0: no "you have not opened it" reminder
    reminder_interval_days: int = 7  # at most one reminder per contact in this many days
    reminder_escalate_after: int = 2  # approvers are copied once an invoice had this many reminders; 0: never
    # Per customer group, any of the reminder_* keys without the prefix, e.g.
    # [reminder_groups."Key accounts"] days_overdue = [7, 30]. Stored as sorted pairs (hashable, frozen).
    reminder_groups: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    digest_unopened_days: int = 5
    digest_min_amount: int = 0  # minor units of the invoice's currency
    # Disputes (docs/disputes.md): the reason codes a customer chooses from, in the form's order. Known codes
    # get readable labels (portal.disputes.service.REASON_LABELS); any other code is shown as written.
    dispute_reasons: tuple[str, ...] = ("pricing", "quantity", "damaged", "not_received", "duplicate_billing",
                                        "po_mismatch", "tax", "other")
    # The refresh queue (docs/refresh.md). "thread": the webhook process runs the jobs that follow an event
    # (re-render and publish the customer, send its emails) in a background thread, which suits one machine and
    # `portal serve`; "external": it only records them, for `portal worker` processes or the worker Lambda.
    job_runner: str = "thread"
    # SQS queue URL the webhook sends a wake-up to after each job is recorded (the AWS deployment); empty: none.
    job_queue_url: str = ""
    job_lease_seconds: int = 120  # a job whose worker died is run again once this has passed
    job_attempts: int = 5  # runs of a failing job before it stays `failed`
    # The collector's workbench (docs/collect.md). On: a collector sees only the notes they wrote themselves
    # (managers and admins see every note); off: notes are shared with the whole team.
    collect_private_notes: bool = False
    # Promises to pay: kept when the money arrived by the promised day plus these days (a transfer in transit),
    # broken otherwise.
    promise_grace_days: int = 3
    # What a customer may promise on their page: a day at most this many days ahead, and at least this share
    # (percent) of what the invoices chosen owe. Collectors promise on a customer's behalf without these limits.
    promise_max_days: int = 30
    promise_min_percent: int = 25
    # Today's worklist (docs/collect.md), amounts in minor units of the invoice's currency: an overdue invoice
    # owing at least `worklist_large_amount` that no person viewed; an invoice due within `worklist_due_soon_days`
    # of a customer owing at least `worklist_big_account` in that currency.
    worklist_large_amount: int = 100_000
    worklist_big_account: int = 1_000_000
    worklist_due_soon_days: int = 7
    # The activity report's targets: touches per hour worked (min, max), emails per ten calls (min, max: about
    # two emails per call); hours worked per day with a touch (0: measured from the logged touches).
    activity_touches_per_hour: tuple[int, ...] = (18, 26)
    activity_emails_per_ten_calls: tuple[int, ...] = (15, 25)
    activity_schedule_hours: int = 0
    config_file: str = field(default="", compare=False)

    @property
    def is_dev_secret(self) -> bool:
        return self.secret_key == DEV_SECRET_KEY

    @property
    def effective_webhook_url(self) -> str:
        return (self.webhook_url or self.site_url).rstrip("/")

    @property
    def effective_private_target(self) -> str:
        if self.private_target:
            return self.private_target
        return self.target if is_s3_url(self.target) else DEFAULT_PRIVATE_FOLDER

    @property
    def payments_enabled(self) -> bool:
        return bool(self.stripe_secret_key)

    def replace(self, **changes: Any) -> Settings:
        return validate(dataclasses.replace(self, **changes))


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "config_file"}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a TOML value or an environment string into the field's type, or raise ConfigError."""
    default = _FIELDS[name].default
    try:
        if name == "reminder_groups":
            return _reminder_groups(json.loads(value) if isinstance(value, str) else value)
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(value)
        if isinstance(default, tuple):
            items = value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]
            element = type(default[0]) if default else str
            return tuple(element(str(v).strip()) for v in items)
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except ValueError as exc:
        raise ConfigError(f"{source}: {name}: {value!r}: {exc}") from None


# What a customer group may override (docs/email.md): the reminder_* keys without their prefix.
REMINDER_GROUP_KEYS = {"days_before_due": tuple, "days_overdue": tuple, "unopened_days": int,
                       "interval_days": int, "escalate_after": int}


def _reminder_groups(value: Any) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """{"group": {"days_overdue": [7, 30], ...}} (a TOML table, or JSON in the environment) -> sorted pairs."""
    if not isinstance(value, dict):
        raise ValueError("expected a table of customer groups")
    groups = []
    for group, rules in sorted(value.items()):
        if not isinstance(rules, dict):
            raise ValueError(f"{group}: expected a table of reminder rules")
        pairs = []
        for key, rule in sorted(rules.items()):
            kind = REMINDER_GROUP_KEYS.get(key)
            if kind is None:
                raise ValueError(f"{group}: {key}: unknown rule (known: {', '.join(sorted(REMINDER_GROUP_KEYS))})")
            if kind is tuple:
                if not isinstance(rule, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                         for v in rule):
                    raise ValueError(f"{group}: {key}: expected a list of whole numbers")
                pairs.append((key, tuple(rule)))
            else:
                if not isinstance(rule, int) or isinstance(rule, bool):
                    raise ValueError(f"{group}: {key}: expected a whole number")
                pairs.append((key, rule))
        groups.append((str(group), tuple(pairs)))
    return tuple(groups)


def load_settings(
    config_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read defaults < portal.toml (or `config_file`) < PORTAL_* variables < `overrides`; validate once."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path(CONFIG_FILE)
    if config_file and not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for key, value in data.items():
            if key not in _FIELDS:
                raise ConfigError(f"{path}: {key}: unknown setting (known: {', '.join(sorted(_FIELDS))})")
            if key in SECRET_KEYS:
                raise ConfigError(f"{path}: {key}: secrets are read from the environment only "
                                  f"(set {ENV_ALIASES.get(key, 'PORTAL_' + key.upper())})")
            values[key] = _coerce(key, value, str(path))
        values["config_file"] = str(path)
    for name in _FIELDS:
        for var in (f"PORTAL_{name.upper()}", ENV_ALIASES.get(name)):
            if var and var in env:
                values[name] = _coerce(name, env[var], var)
    for name, value in overrides.items():
        if name not in _FIELDS:
            raise ConfigError(f"{name}: unknown setting")
        values[name] = value
    return validate(Settings(**values))


def validate(settings: Settings) -> Settings:
    """Check every setting once, so nothing later has to; raise ConfigError naming the key."""
    for key in ("site_url", "webhook_url", "stripe_api_base"):
        value = getattr(settings, key)
        if value and urlparse(value).scheme not in {"http", "https"}:
            raise ConfigError(f"{key}: {value!r} is not an http(s) URL")
    if settings.link_ttl_days < 1:
        raise ConfigError(f"link_ttl_days: {settings.link_ttl_days} must be at least 1")
    if settings.build_workers < 0:
        raise ConfigError(f"build_workers: {settings.build_workers} must be 0 (one per CPU) or more")
    if settings.default_currency not in list_currencies():
        raise ConfigError(f"default_currency: {settings.default_currency!r} is not an ISO 4217 currency")
    try:
        Locale.parse(settings.default_locale)
    except (ValueError, UnknownLocaleError):
        raise ConfigError(f"default_locale: {settings.default_locale!r} is not a known locale") from None
    if list(settings.aging_buckets) != sorted(set(settings.aging_buckets)) or not settings.aging_buckets:
        raise ConfigError(f"aging_buckets: {list(settings.aging_buckets)} must be increasing day counts")
    scheme = settings.mail_url.split(":", 1)[0]
    if scheme not in {"outbox", "smtp", "smtps", "ses"}:
        raise ConfigError(f"mail_url: {settings.mail_url!r}: use outbox:DIR, smtp://user:pass@host:port "
                          "or ses://region")
    _validate_mail(settings)
    _validate_promises(settings)
    if settings.partial_minimum < 0:
        raise ConfigError(f"partial_minimum: {settings.partial_minimum} must not be negative")
    if not 0 <= settings.ach_discount_bps <= 1000:
        raise ConfigError(f"ach_discount_bps: {settings.ach_discount_bps} must be between 0 and 1000 (10%)")
    if not 0 <= settings.card_fee_bps <= 300:
        raise ConfigError(f"card_fee_bps: {settings.card_fee_bps} must be between 0 and 300 (the 3% card cap)")
    if not 1 <= settings.autopay_notice_days <= 30:
        raise ConfigError(f"autopay_notice_days: {settings.autopay_notice_days} must be between 1 and 30 (NACHA "
                          "expects advance notice of each debit of a varying amount)")
    if not 0 <= settings.autopay_retries <= 5:
        raise ConfigError(f"autopay_retries: {settings.autopay_retries} must be between 0 and 5")
    if not 1 <= settings.autopay_retry_days <= 14:
        raise ConfigError(f"autopay_retry_days: {settings.autopay_retry_days} must be between 1 and 14")
    if not settings.dispute_reasons or any(not re.fullmatch(r"[a-z0-9_]{1,40}", r) for r in settings.dispute_reasons):
        raise ConfigError(f"dispute_reasons: {list(settings.dispute_reasons)} must be codes of a-z, 0-9 and _")
    if len(settings.secret_key) < 16:
        raise ConfigError("secret_key: PORTAL_SECRET_KEY must be at least 16 characters")
    if settings.job_runner not in {"thread", "external"}:
        raise ConfigError(f"job_runner: {settings.job_runner!r}: use thread or external")
    if settings.job_lease_seconds < 1:
        raise ConfigError(f"job_lease_seconds: {settings.job_lease_seconds} must be at least 1")
    if settings.job_attempts < 1:
        raise ConfigError(f"job_attempts: {settings.job_attempts} must be at least 1")
    if settings.job_queue_url and urlparse(settings.job_queue_url).scheme not in {"http", "https"}:
        raise ConfigError(f"job_queue_url: {settings.job_queue_url!r} is not an SQS queue URL")
    _validate_private_target(settings)
    _validate_documents(settings)
    return settings


def _validate_documents(settings: Settings) -> None:
    """The PDF settings that name files: checked here so that a bad one stops the build, not a download."""
    if settings.company_logo:
        logo = Path(settings.company_logo)
        try:
            head = logo.read_bytes()[:8]
        except OSError as exc:
            raise ConfigError(f"company_logo: {settings.company_logo!r} cannot be read ({exc.strerror})") from None
        if not (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")):
            raise ConfigError(f"company_logo: {settings.company_logo!r} is not a PNG or JPEG file")
    if settings.font_dir and not Path(settings.font_dir).is_dir():
        raise ConfigError(f"font_dir: {settings.font_dir!r} is not a folder")


def _validate_private_target(settings: Settings) -> None:
    """Private files must live where the site is not served from: outside the target and build folders, or
    for S3 not under the target's c/, assets/ or docs/."""
    private = settings.effective_private_target
    key = "private_target" if settings.private_target else "private_target (default)"
    if is_s3_url(private):
        if urlparse(private).netloc == "":
            raise ConfigError(f"{key}: {private!r} names no bucket (write s3://bucket/prefix)")
        if is_s3_url(settings.target):
            site = settings.target.rstrip("/") + "/"
            if any((private.rstrip("/") + "/").startswith(f"{site}{part}/") for part in SITE_PREFIXES):
                raise ConfigError(f"{key}: {private!r} is inside what the site serves ({site}c/, assets/, docs/)")
        return
    folder = Path(private).resolve()
    for site_key in ("target", "build_dir"):
        site = getattr(settings, site_key)
        if is_s3_url(site):
            continue
        served = Path(site).resolve()
        if folder.is_relative_to(served):
            raise ConfigError(f"{key}: the folder {str(folder)!r} is inside {site_key} {str(served)!r}, which a web "
                              "server may serve: set private_target (PORTAL_PRIVATE_TARGET) to a folder outside it")


def warn_if_insecure(settings: Settings) -> None:
    """Say loudly, every time, what is unsafe: the development secret signs every link; dispute attachments
    left in a site folder by an older version are served by any static host serving that folder (they are not
    moved silently: docs/disputes.md says how)."""
    if settings.is_dev_secret:
        log.warning(
            "PORTAL_SECRET_KEY is not set: using the built-in DEVELOPMENT secret. Anyone can forge "
            "customer links with it. Set PORTAL_SECRET_KEY before publishing anything."
        )
    for site_key in ("target", "build_dir"):
        site = getattr(settings, site_key)
        old = Path(site) / "disputes"
        if not is_s3_url(site) and old.is_dir() and any(p.is_file() for p in old.rglob("*")):
            log.warning(
                "%s: dispute attachments are in the site folder %s, where a static host serving it serves them. "
                "Move them to %s/disputes (private_target; see docs/disputes.md).",
                site_key, old, settings.effective_private_target)
