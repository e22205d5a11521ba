"""Sending email: the one transport `settings.mail_url` chooses, and handing a message to it (with retries).

- `outbox:DIR` writes each message as a `.eml` file into DIR (the default: nothing leaves the machine).
- `smtp://user:pass@host:port` talks SMTP, upgrading with STARTTLS whenever the server offers it;
  `smtps://...` uses TLS from the first byte (port 465).
- `ses://region` hands the raw message to Amazon SES (`send_raw_email`); credentials from boto3's chain.

Every transport's `send(message)` returns the message id it was sent under, which callers record with the
`email_sent` event so a bounce or a "never got it" can be traced to one message. What the messages say is
portal/mail/messages.py's; sending many and recording each is portal/mail/delivery.py's.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from portal.core.config import Settings
from portal.core.errors import ConfigError, PortalError

SES_TRANSIENT = {"Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestTimeout"}
SMTP_TIMEOUT = 30  # seconds: a stuck relay must not hold a webhook worker forever


class MailError(PortalError):
    """A message could not be handed to the mail transport.

    `transient`: worth trying again later (a 4xx answer, a dropped or refused connection); a permanent
    failure (a 5xx such as an unknown recipient) will fail the same way every time.
    `refused`: recipient address (lower case) -> (status, the server's words) when the failure is the
    recipient being refused for good (an SMTP 5xx at RCPT, SES MessageRejected): a bounce at sending time,
    recorded as one (portal/mail/delivery.py). Empty for every other failure (a relay down, a bad password).
    """

    def __init__(self, message: str, transient: bool = False, refused: dict[str, tuple[str, str]] | None = None):
        super().__init__(message)
        self.transient = transient
        self.refused = refused or {}


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
                            transient=_smtp_transient(exc), refused=_smtp_refused(exc)) from exc
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


def _smtp_refused(exc: BaseException) -> dict[str, tuple[str, str]]:
    """The recipients a server refused for good at RCPT (5xx). A 5xx at DATA is about the message (its size,
    its content), not an address, so it is no bounce of anyone."""
    if not isinstance(exc, smtplib.SMTPRecipientsRefused):
        return {}
    return {address.lower(): (str(code), answer.decode("utf-8", "replace") if isinstance(answer, bytes)
                              else str(answer))
            for address, (code, answer) in exc.recipients.items() if 500 <= code < 600}


def _recipients(message: EmailMessage) -> list[str]:
    return [a.addr_spec.lower() for field in ("To", "Cc") for a in getattr(message[field], "addresses", ()) or ()]


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
            # SES refuses a message it will not send to its recipients (a suppressed or invalid address) with
            # MessageRejected: for a portal message, which always has one recipient, that is a bounce.
            refused = {a: (code, str(exc)) for a in _recipients(message)} if code == "MessageRejected" else {}
            raise MailError(f"SES ({self.region}): {exc.__class__.__name__}: {exc}", transient=transient,
                            refused=refused) from exc
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
