"""Asynchronous bounces (`portal mail bounces PATH`): RFC 3464 delivery status notifications read from an mbox
or a Maildir, each failed recipient recorded as a bounce of the message the portal sent (docs/collect.md).

What counts: a `multipart/report` holding a `message/delivery-status` part, whose per-recipient block says
`Action: failed` with a `Status: 5.x.x` (a 4.x.x or `delayed` is the relay still trying: nothing yet). The
message it returns is found by the original Message-ID, from the `text/rfc822-headers` or `message/rfc822` part,
among the messages the transport accepted (`mail_sent`); the block's `Final-Recipient` (or `Original-Recipient`,
when a forward rewrote the address) must be the address on file of the contact that message went to. Anything
else is listed, never fatal: a mailbox holds out-of-office replies, spam and notifications about mail the portal
did not send. Reading is read-only and idempotent: a (message, recipient) bounces once, however often the same
notification is read, so a cron job may read the whole mailbox every time.

A file of JSON instead holds Amazon SES bounce notifications (as SES publishes them to SNS, or as SNS delivers
them): a `Permanent` bounce counts, matched by SES's message id to the Message-ID the SES transport recorded.

A notification is only a claim (anyone can mail one to the bounce address), so a bounce changes nothing by
itself: no address is dropped, no mail is held back. It puts the customer on the collector's worklist and on
the timeline, and a person decides.
"""

from __future__ import annotations

import email.errors
import json
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from portal.core.errors import PortalError
from portal.store.database import Store
from portal.store.mail import Bounce, record_bounce, sent_message, sent_through_ses
from portal.store.tables import contacts

PERMANENT = re.compile(r"5\.\d{1,3}\.\d{1,3}")
# A broken notification must not end the run: these are what the stdlib's parser and header classes raise.
UNREADABLE = (ValueError, TypeError, LookupError, AttributeError, UnicodeError, email.errors.MessageError)


@dataclass
class BounceRun:
    """What one reading found, one line per notification or recipient, for the command's output."""

    recorded: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # the same bounce read before
    unmatched: list[str] = field(default_factory=list)  # a notification about mail the portal did not send
    malformed: list[str] = field(default_factory=list)  # a delivery status notification missing what it needs
    skipped: list[str] = field(default_factory=list)  # not a notification, or not a permanent failure

    def summary(self) -> str:
        lines = [f"{label}: {line}" for label, found in (
            ("recorded", self.recorded), ("already recorded", self.already), ("unmatched", self.unmatched),
            ("malformed", self.malformed), ("skipped", self.skipped)) for line in found]
        lines.append(f"{len(self.recorded)} bounce(s) recorded, {len(self.already)} already recorded, "
                     f"{len(self.unmatched)} unmatched, {len(self.malformed)} malformed, {len(self.skipped)} skipped")
        return "\n".join(lines)


class NotDsn(Exception):
    """The message is no delivery status notification, or reports no permanent failure: skipped."""


class Malformed(Exception):
    """A delivery status notification missing what a bounce needs."""


def read_bounces(store: Store, path: Path, now: datetime | None = None) -> BounceRun:
    """Record every permanent failure reported by the notifications in the mbox file or Maildir at `path`."""
    now = now or datetime.now(UTC)
    run = BounceRun()
    if path.is_file() and path.read_bytes()[:64].lstrip()[:1] in (b"{", b"["):
        _ses_notifications(store, path, now, run)
        return run
    for name, data in _messages(path):
        try:
            _one(store, name, message_from_bytes(data, policy=policy.default), now, run)
        except NotDsn as exc:
            run.skipped.append(f"{name}: {exc}")
        except Malformed as exc:
            run.malformed.append(f"{name}: {exc}")
        except UNREADABLE as exc:
            run.malformed.append(f"{name}: cannot be read ({exc.__class__.__name__}: {exc})")
    return run


def _messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(a name for the output, the raw message) for each message of an mbox file, a Maildir, or a single message
    file (what a mail client saves)."""
    if not path.exists():
        raise PortalError(f"{path}: no such file or folder (give an mbox file or a Maildir)")
    if path.is_dir():
        if not ((path / "cur").is_dir() or (path / "new").is_dir()):
            raise PortalError(f"{path}: a folder but not a Maildir (it has no cur/ or new/ folder)")
        box: mailbox.Mailbox = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.keys()):
            yield f"{path.name}/{key}", box.get_bytes(key)
        return
    with path.open("rb") as f:
        mbox = f.read(5) == b"From "
    if not mbox:
        yield path.name, path.read_bytes()
        return
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for n, key in enumerate(box.keys(), start=1):
            yield f"{path.name} message {n}", box.get_bytes(key)
    finally:
        box.close()


@dataclass(frozen=True)
class Failure:
    """One recipient a notification reports refused for good."""

    final: str  # lower case
    original: str  # lower case; "" when not given
    status: str
    diagnostic: str
    when: datetime


def _one(store: Store, name: str, message: Message, now: datetime, run: BounceRun) -> None:
    if message.get_content_type() != "multipart/report":
        raise NotDsn("not a delivery status notification (not multipart/report)")
    status_part = next((p for p in message.walk() if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        raise NotDsn("a report, but not about delivery (no message/delivery-status part)")
    blocks = status_part.get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise Malformed("the delivery status has no per-recipient fields")
    per_message, recipients = blocks[0], blocks[1:]
    failed = []
    for n, block in enumerate(recipients, start=1):
        action, status = _field(block, "Action").lower(), _field(block, "Status").split(" ")[0]
        final = _address(_field(block, "Final-Recipient"))
        if not (action and status and final):
            raise Malformed(f"recipient {n}: Action, Status and Final-Recipient are required")
        if action == "failed" and PERMANENT.fullmatch(status):
            failed.append(Failure(final, _address(_field(block, "Original-Recipient")), status,
                                  _typed(_field(block, "Diagnostic-Code")), _when(block, per_message, message, now)))
    if not failed:
        raise NotDsn("reports no permanent failure (only delays, deliveries or temporary failures)")
    message_id = _original_message_id(message)
    with store.begin() as conn:
        _record(conn, name, message_id, sent_message(conn, message_id), failed, "dsn", now, run)


def _record(conn: Connection, name: str, message_id: str, sent: list[tuple[str, str, str, str]],
            failed: list[Failure], source: str, now: datetime, run: BounceRun) -> None:
    """Match each failure to the contact the message went to, by address on file, and record it once."""
    if not sent:
        run.unmatched.append(f"{name}: {message_id}: the portal sent no message with this Message-ID")
        return
    pairs = sorted({(customer_id, contact_id) for customer_id, contact_id, _, _ in sent})
    on_file = {r.email.lower(): (r.customer_id, r.contact_id) for r in conn.execute(
        select(contacts.c.customer_id, contacts.c.contact_id, contacts.c.email)
        .where(tuple_(contacts.c.customer_id, contacts.c.contact_id).in_(pairs)))}
    for f in failed:
        address = f.final if f.final in on_file else f.original if f.original in on_file else ""
        if not address:
            run.unmatched.append(f"{name}: {message_id}: {f.final} is not the address on file of the contact "
                                 "it was sent to")
            continue
        customer_id, contact_id = on_file[address]
        mine = [row for row in sent if row[:2] == (customer_id, contact_id)]
        bounce = Bounce(message_id, address, customer_id, contact_id, mine[0][2], f.status, f.diagnostic, source,
                        f.when, tuple(row[3] for row in mine if row[3]))
        line = f"{message_id} to {address} ({customer_id}/{contact_id}, {bounce.kind}): {f.status}"
        (run.recorded if record_bounce(conn, bounce, now) else run.already).append(f"{name}: {line}")


def _ses_notifications(store: Store, path: Path, now: datetime, run: BounceRun) -> None:
    """SES bounce notifications (what SES publishes to SNS, or SNS delivers: the envelope is opened) saved as one
    JSON object, a list of them, or one per line. A Permanent bounce counts; Transient and Undetermined ones are
    SES still trying or a full mailbox. The message is the one SES accepted under `mail.messageId`."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        parsed = json.loads(text)
        items = parsed if isinstance(parsed, list) else [parsed]
    except ValueError:
        items = []
        for n, line in enumerate(text.splitlines(), start=1):
            try:
                items.append(json.loads(line) if line.strip() else None)
            except ValueError as exc:
                run.malformed.append(f"{path.name} line {n}: not JSON ({exc})")
                items.append(None)
    for n, item in enumerate(items, start=1):
        if item is None:
            continue
        name = f"{path.name} notification {n}"
        try:
            _ses_one(store, name, item, now, run)
        except NotDsn as exc:
            run.skipped.append(f"{name}: {exc}")
        except Malformed as exc:
            run.malformed.append(f"{name}: {exc}")


def _ses_one(store: Store, name: str, item: Any, now: datetime, run: BounceRun) -> None:
    if isinstance(item, dict) and item.get("Type") == "Notification" and isinstance(item.get("Message"), str):
        try:
            item = json.loads(item["Message"])
        except ValueError as exc:
            raise Malformed(f"the SNS message is not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise Malformed("not a JSON object")
    kind = item.get("notificationType") or item.get("eventType")
    if kind != "Bounce":
        raise NotDsn(f"not a bounce ({str(kind)[:40]})")
    bounce, mail = item.get("bounce"), item.get("mail")
    if not isinstance(bounce, dict) or not isinstance(mail, dict) or not isinstance(mail.get("messageId"), str):
        raise Malformed("a bounce needs its bounce object and mail.messageId")
    if bounce.get("bounceType") != "Permanent":
        raise NotDsn(f"a {str(bounce.get('bounceType'))[:40]} bounce: not for good")
    when = now
    try:
        at = datetime.fromisoformat(str(bounce.get("timestamp", "")))
        when = min(at if at.tzinfo else at.replace(tzinfo=UTC), now)
    except ValueError:
        pass
    failed = []
    for r in bounce.get("bouncedRecipients") or []:
        if not isinstance(r, dict) or not isinstance(r.get("emailAddress"), str):
            raise Malformed("each of bounce.bouncedRecipients needs an emailAddress")
        failed.append(Failure(_address(r["emailAddress"]), "", str(r.get("status", ""))[:20],
                              _typed(str(r.get("diagnosticCode", ""))), when))
    if not failed:
        raise Malformed("bounce.bouncedRecipients names nobody")
    with store.begin() as conn:
        message_id, sent = sent_through_ses(conn, mail["messageId"])
        _record(conn, name, message_id or f"SES {mail['messageId'][:80]}", sent, failed, "ses", now, run)


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


def _typed(value: str) -> str:
    """`smtp; 550 5.1.1 user unknown` -> `550 5.1.1 user unknown`: the value without its type."""
    return value.partition(";")[2].strip() if ";" in value else value.strip()


def _address(value: str) -> str:
    """`rfc822; Ann@Example.com` -> `ann@example.com`."""
    return _typed(value).strip("<>").lower()


def _original_message_id(message: Message) -> str:
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/rfc822-headers":
            headers = HeaderParser(policy=policy.default).parsestr(part.get_payload(decode=True).decode(
                part.get_content_charset() or "utf-8", "replace"))
        elif kind == "message/rfc822" and isinstance(part.get_payload(), list) and part.get_payload():
            headers = part.get_payload()[0]
        else:
            continue
        found = " ".join(str(headers.get("Message-ID", "")).split())
        if found:
            return found
    raise Malformed("it does not name the original Message-ID (no text/rfc822-headers or message/rfc822 part "
                    "with one)")


def _when(block: Message, per_message: Message, message: Message, now: datetime) -> datetime:
    """When it bounced: the recipient's last attempt, else the notification's arrival or date; never later than
    now (a sender's clock may run ahead)."""
    for value in (block.get("Last-Attempt-Date"), per_message.get("Arrival-Date"), message.get("Date")):
        try:
            at = parsedate_to_datetime(str(value)) if value else None
        except (TypeError, ValueError):
            at = None
        if at is not None:
            return min(at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC), now)
    return now
