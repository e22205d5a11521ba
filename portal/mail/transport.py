"""Sending email: one transport chosen by `settings.mail_url`, and the messages the portal sends.

- `outbox:DIR` writes each message as a `.eml` file into DIR (the default: nothing leaves the machine).
- `smtp://user:pass@host:port` talks SMTP, upgrading with STARTTLS whenever the server offers it;
  `smtps://...` uses TLS from the first byte (port 465).
- `ses://region` hands the raw message to Amazon SES (`send_raw_email`); credentials from boto3's chain.

Every transport's `send(message)` returns the message id it was sent under, which callers record with the
`email_sent` event so a bounce or a "never got it" can be traced to one message.
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from portal.core.config import Settings
from portal.core.errors import ConfigError, PortalError
from portal.core.templating import template_dirs

SES_TRANSIENT = {"Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}
SMTP_TIMEOUT = 30  # seconds: a stuck relay must not hold a webhook worker forever


class MailError(PortalError):
    """A message could not be handed to the mail transport.

    `transient`: worth trying again later (a 4xx answer, a dropped or refused connection); a permanent
    failure (a 5xx such as an unknown recipient) will fail the same way every time.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class Transport(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Deliver `message`; return its message id."""


def _ensure_ids(message: EmailMessage, domain: str) -> str:
    """Give the message a Message-ID and a Date if it has none, and return the id."""
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain=domain)
    if message["Date"] is None:
        message["Date"] = formatdate(localtime=False, usegmt=True)
    return str(message["Message-ID"])


def _sender_domain(message: EmailMessage) -> str:
    sender = str(message.get("From", ""))
    return sender.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"


class OutboxTransport:
    """Writes `<time>-<id>.eml` files: the development default, and what tests read back."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def send(self, message: EmailMessage) -> str:
        message_id = _ensure_ids(message, _sender_domain(message))
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.time_ns()}-{hashlib.sha256(message_id.encode()).hexdigest()[:10]}"
        temp = self.folder / f".{stem}.tmp"
        temp.write_bytes(message.as_bytes())
        os.replace(temp, self.folder / f"{stem}.eml")  # readers never see half a message
        return message_id


class SmtpTransport:
    """SMTP with STARTTLS when offered (required when a password is sent), or implicit TLS for smtps."""

    def __init__(self, host: str, port: int, username: str = "", password: str = "", implicit_tls: bool = False):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.implicit_tls = implicit_tls

    def send(self, message: EmailMessage) -> str:
        message_id = _ensure_ids(message, _sender_domain(message))
        context = ssl.create_default_context()
        try:
            if self.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
            with client:
                client.ehlo()
                if not self.implicit_tls and client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                if self.username:
                    client.login(self.username, self.password)
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP {self.host}:{self.port}: {exc.__class__.__name__}: {exc}",
                            transient=_smtp_transient(exc)) from exc
        return message_id


def _smtp_transient(exc: BaseException) -> bool:
    """4xx answers and lost connections are worth retrying; 5xx answers (bad address, refused) are not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPAuthenticationError | ssl.SSLError):
        return False
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)


class SesTransport:
    """Amazon SES through boto3; SES assigns its own Message-ID, which is what we return."""

    def __init__(self, region: str):
        import boto3  # only deployments that mail through SES pay for importing boto3

        self.region = region
        self.client = boto3.client("ses", region_name=region)

    def send(self, message: EmailMessage) -> str:
        _ensure_ids(message, _sender_domain(message))
        try:
            answer = self.client.send_raw_email(RawMessage={"Data": message.as_bytes()})
        except Exception as exc:  # noqa: BLE001 - botocore raises many unrelated classes
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
            # Throttling and outages pass; a rejected message or an unverified sender will not.
            transient = code in SES_TRANSIENT or exc.__class__.__name__ in {"EndpointConnectionError",
                                                                              "ConnectTimeoutError", "ReadTimeoutError"}
            raise MailError(f"SES ({self.region}): {exc.__class__.__name__}: {exc}", transient=transient) from exc
        return f"<{answer['MessageId']}@{self.region}.amazonses.com>"


def transport_from_url(url: str) -> Transport:
    """Make the transport a `mail_url` names (the forms are validated in portal.core.config)."""
    scheme, _, rest = url.partition(":")
    if scheme == "outbox":
        return OutboxTransport(rest or "outbox")
    parts = urlparse(url)
    if scheme in {"smtp", "smtps"}:
        if not parts.hostname:
            raise ConfigError(f"mail_url: {scheme}:// needs a host, e.g. smtp://user:pass@host:587")
        port = parts.port or (465 if scheme == "smtps" else 587)
        return SmtpTransport(parts.hostname, port, unquote(parts.username or ""), unquote(parts.password or ""),
                             implicit_tls=scheme == "smtps")
    if scheme == "ses":
        if not parts.hostname:
            raise ConfigError("mail_url: ses:// needs a region, e.g. ses://eu-west-1")
        return SesTransport(parts.hostname)
    raise ConfigError(f"mail_url: {scheme!r} is not a known mail transport")


def send(settings: Settings, message: EmailMessage) -> str:
    """Send one message through the configured transport; return its message id."""
    return transport_from_url(settings.mail_url).send(message)


def send_with_retry(transport: Transport, message: EmailMessage, attempts: int = 3, delay: float = 2.0,
                    sleep: Callable[[float], None] = time.sleep) -> str:
    """Send, retrying transient failures up to `attempts` tries in all, waiting `delay` seconds and doubling.

    Raises the last MailError when every try failed, or at once when a failure is permanent. The
    Message-ID is fixed before the first try, so a relay that accepted a message but dropped the
    connection before answering sees the same id again and the duplicate can be traced.
    """
    _ensure_ids(message, _sender_domain(message))
    for attempt in range(1, attempts + 1):
        try:
            return transport.send(message)
        except MailError as exc:
            if not exc.transient or attempt == attempts:
                raise
            sleep(delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover


# --- messages ---------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _environment(dirs: tuple[Path, ...]) -> Environment:
    # HTML parts are escaped; plain-text parts must not be (an "&" in a company name stays "&").
    return Environment(loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
                       autoescape=select_autoescape(["html"], default_for_string=False),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Text for a header (a subject, a display name): control characters and line breaks become spaces (a line
    break is refused in a header, and would end it), runs of spaces one."""
    return " ".join(_CONTROL.sub(" ", text).split())


def render_message(settings: Settings, template: str, to: tuple[str, str], subject: str, **context: object
                   ) -> EmailMessage:
    """A multipart (text + HTML) message from `templates/email/<template>.txt` and `.html`.

    `to` is (name, address). Every header built from data is made here and made one line (`one_line`): an
    invoice number, a customer or company name with a line break in it cannot fail the message or add a header.
    """
    env = _environment(tuple(template_dirs(settings)))
    context = {"company": settings.company_name, "support_email": settings.support_email, **context}
    message = EmailMessage()
    message["Subject"] = one_line(subject)
    message["From"] = formataddr((one_line(settings.company_name), settings.mail_from or settings.support_email))
    name, address = to
    message["To"] = Address(display_name=one_line(name), addr_spec=address)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(env.get_template(f"email/{template}.txt").render(**context))
    message.add_alternative(env.get_template(f"email/{template}.html").render(**context), subtype="html")
    return message


def fresh_link_message(settings: Settings, to: tuple[str, str], customer_name: str, url: str,
                       invoice_number: str = "") -> EmailMessage:
    """The answer to "email me a fresh link": a new signed link for a contact on file."""
    subject = (f"Your link to invoice {invoice_number}" if invoice_number else "Your link to your account") + \
        f" · {settings.company_name}"
    return render_message(settings, "fresh_link", to, subject, customer_name=customer_name, url=url,
                          invoice_number=invoice_number, contact_name=to[0], ttl_days=settings.link_ttl_days)
