"""The demo's mail viewer (/demo/outbox): the emails the demo "sent", read from its `outbox:DIR` folder.

Everything a message holds is untrusted text: headers and the text part are escaped by the templates'
autoescaping; the HTML part is shown in an iframe's `srcdoc` (escaped into the attribute) with an empty
`sandbox`, so that its scripts, forms and links cannot act on this origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, url_for

from webhook.services import render, services

bp = Blueprint("demo_outbox", __name__)

NAME = re.compile(r"[0-9]+-[0-9a-f]{10}\.eml")  # what portal.mail.transport.OutboxTransport writes
# The message page allows the inline styles of the email shown in its sandboxed frame, nothing else more.
MESSAGE_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Mail:
    name: str
    sent: datetime | None
    to: str
    subject: str


def outbox_folder() -> Path | None:
    url = services().settings.mail_url
    return Path(url.removeprefix("outbox:") or "outbox") if url.startswith("outbox:") else None


def _read(path: Path) -> EmailMessage:
    return message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def _sent(message: EmailMessage) -> datetime | None:
    try:
        return parsedate_to_datetime(str(message["Date"])).astimezone(UTC) if message["Date"] else None
    except (TypeError, ValueError):
        return None


def mails(folder: Path) -> list[Mail]:
    found = []
    for path in sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []:
        if NAME.fullmatch(path.name):
            message = _read(path)
            found.append(Mail(path.name, _sent(message), str(message["To"] or ""), str(message["Subject"] or "")))
    return found


@bp.get("/demo/outbox/")
def index() -> Any:
    folder = outbox_folder()
    return render("webhook/demo_outbox.html", title="Emails the demo sent", folder=str(folder or ""),
                  mails=mails(folder) if folder else [], url_for=url_for)


@bp.get("/demo/outbox/<name>")
def message(name: str) -> Any:
    folder = outbox_folder()
    if folder is None or not NAME.fullmatch(name) or not (folder / name).is_file():
        abort(404)
    mail = _read(folder / name)
    html_part, text_part = mail.get_body(("html",)), mail.get_body(("plain",))
    html = html_part.get_content() if html_part is not None else ""
    text = text_part.get_content() if text_part is not None else ""
    headers = [(key, str(mail[key])) for key in ("Date", "From", "To", "Reply-To", "Subject") if mail[key]]
    attachments = [part.get_filename() or "(unnamed)" for part in mail.iter_attachments()]
    body, status, response_headers = render("webhook/demo_mail.html", title=str(mail["Subject"] or name),
                                            headers=headers, html=html, text=text, attachments=attachments,
                                            url_for=url_for)
    return body, status, {**response_headers, "Content-Security-Policy": MESSAGE_CSP}
