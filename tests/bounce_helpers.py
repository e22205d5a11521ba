"""Delivery status notifications (RFC 3464) built with the stdlib, as a relay would send them back, and mailboxes
(mbox, Maildir) holding them: what `portal mail bounces` reads."""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Iterable
from datetime import datetime
from email.message import EmailMessage, Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from pathlib import Path


def dsn(message_id: str, recipient: str, *, action: str = "failed", status: str = "5.1.1",
        original_recipient: str = "", when: datetime | None = None, headers_only: bool = True,
        diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown") -> bytes:
    """A bounce of `message_id` for `recipient`: a multipart/report with a message/delivery-status part and the
    original's headers (text/rfc822-headers) or, with `headers_only=False`, the whole original (message/rfc822)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@relay.example (Mail Delivery System)"
    report["To"] = "ar@supplier.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    key = hashlib.sha256(f"{message_id} {recipient} {action} {status}".encode()).hexdigest()[:16]
    report["Message-ID"] = f"<dsn-{key}@relay.example>"
    if when is not None:
        report["Date"] = format_datetime(when)
    report.attach(MIMEText(f"I'm sorry to have to inform you that your message could not be delivered to "
                           f"{recipient}.\n"))
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; relay.example"
    if when is not None:
        per_message["Arrival-Date"] = format_datetime(when)
    per_recipient = Message()
    if original_recipient:
        per_recipient["Original-Recipient"] = f"rfc822; {original_recipient}"
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = diagnostic.format(r=recipient)
    status_part = Message()
    status_part["Content-Type"] = "message/delivery-status"
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    original = EmailMessage()
    original["From"] = "ar@supplier.example"
    original["To"] = recipient
    original["Subject"] = "Your invoices"
    original["Message-ID"] = message_id
    original.set_content("Your invoices are ready.\n")
    if headers_only:
        headers = "".join(f"{k}: {v}\n" for k, v in original.items())
        report.attach(MIMEText(headers, "rfc822-headers"))
    else:
        report.attach(MIMEMessage(original))
    return report.as_bytes()


def write_mbox(path: Path, messages: Iterable[bytes]) -> Path:
    box = mailbox.mbox(path)
    for data in messages:
        box.add(data)
    box.close()
    return path


def write_maildir(path: Path, messages: Iterable[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for data in messages:
        box.add(data)
    return path
