"""What the mail features remember: every accepted message per invoice, who unsubscribed from reminders, and
which messages came back undeliverable (bounces).

`mail_sent` holds one row per (message, invoice), written in the same transaction as the `email_sent`
events and only after the transport accepted the message: a run that dies half-way has recorded exactly
what left, so the next run sends the rest. The row keeps the invoice's content hash at sending time, which
is how `portal send` knows an invoice changed since the contact last got it.

`mail_bounces` holds one row per (message, recipient) that was refused for good: at sending time (an SMTP 5xx
for the recipient, SES MessageRejected) or later by a delivery status notification (portal/mail/bounces.py).
The pair is unique, so reading the same notification twice records one bounce; each new bounce also writes an
`email_bounced` event per invoice of the message, in the same transaction, for the customer's timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from portal.store.collect import record_portal_touch
from portal.store.tables import ID, UTCDateTime, events, metadata

mail_sent = Table(
    "mail_sent", metadata,
    Column("mail_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),  # invoices | reminder | digest
    Column("rule", String(40), nullable=False, default=""),  # which reminder rule chose the invoice
    Column("customer_id", String(ID), nullable=False),
    Column("contact_id", String(320), nullable=False, default=""),
    Column("invoice_id", String(ID), nullable=False, default=""),
    Column("content_hash", String(64), nullable=False, default=""),
    Column("message_id", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Index("ix_mail_sent_customer_contact_kind", "customer_id", "contact_id", "kind"),
    Index("ix_mail_sent_invoice_kind", "invoice_id", "kind"),
    Index("ix_mail_sent_message_id", "message_id"),  # a bounce names the message it returns
)

# Per contact: reminders stop; invoice emails and answers to "email me a fresh link" do not.
mail_unsubscribes = Table(
    "mail_unsubscribes", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("contact_id", String(320), primary_key=True),
    Column("unsubscribed_at", UTCDateTime, nullable=False),
)

mail_bounces = Table(
    "mail_bounces", metadata,
    Column("bounce_id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", Text, nullable=False),  # the Message-ID the portal sent under, with its <>
    Column("recipient", String(320), nullable=False),  # the refused address, lower case
    Column("customer_id", String(ID), nullable=False),
    Column("contact_id", String(320), nullable=False, default=""),
    Column("kind", String(20), nullable=False),  # what the message was: invoices | reminder | ...
    Column("status", String(20), nullable=False, default=""),  # "5.1.1" (a DSN's Status) or "550" (SMTP)
    Column("diagnostic", Text, nullable=False, default=""),  # the remote server's words, at most 1,000 characters
    # sending (the relay or SES refused it) | dsn (a delivery status notification) | ses (SES's bounce notification)
    Column("source", String(10), nullable=False),
    Column("bounced_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    UniqueConstraint("message_id", "recipient"),
    Index("ix_mail_bounces_customer_id_bounced_at", "customer_id", "bounced_at"),
)


@dataclass(frozen=True)
class SentRow:
    """One invoice of one accepted message, ready to record."""

    customer_id: str
    contact_id: str
    invoice_id: str
    content_hash: str
    rule: str = ""


def record_sent(conn: Connection, kind: str, message_id: str, sent_at: datetime, rows: Iterable[SentRow]) -> None:
    """Record an accepted message: a `mail_sent` row and an `email_sent` event per invoice, and one touch per
    contact for the workbench (portal/store/collect.py)."""
    rows = list(rows)
    if not rows:
        return
    conn.execute(insert(mail_sent), [
        {"kind": kind, "rule": r.rule, "customer_id": r.customer_id, "contact_id": r.contact_id,
         "invoice_id": r.invoice_id, "content_hash": r.content_hash, "message_id": message_id, "sent_at": sent_at}
        for r in rows])
    conn.execute(insert(events), [
        {"kind": "email_sent", "occurred_at": sent_at, "customer_id": r.customer_id, "contact_id": r.contact_id,
         "invoice_id": r.invoice_id, "document_id": "", "ip": "", "user_agent": "",
         "detail": f"{kind}{':' + r.rule if r.rule else ''} {message_id}"}
        for r in rows])
    # The workbench counts each message once, for its contact (a message lists several invoices).
    by_contact: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by_contact.setdefault((r.customer_id, r.contact_id), []).append(r.invoice_id)
    for (customer_id, contact_id), invoice_ids in by_contact.items():
        record_portal_touch(conn, customer_id, contact_id, [i for i in invoice_ids if i], kind, message_id, sent_at)


def sent_hashes(conn: Connection) -> dict[tuple[str, str, str], set[str]]:
    """(customer, contact, invoice) -> the content hashes that contact was sent the invoice under."""
    result: dict[tuple[str, str, str], set[str]] = {}
    query = select(mail_sent.c.customer_id, mail_sent.c.contact_id, mail_sent.c.invoice_id,
                   mail_sent.c.content_hash).where(mail_sent.c.kind == "invoices").distinct()
    for r in conn.execute(query):
        result.setdefault((r.customer_id, r.contact_id, r.invoice_id), set()).add(r.content_hash)
    return result


def first_sent(conn: Connection) -> dict[str, datetime]:
    """invoice -> when it was first emailed (by `portal send`) to anyone."""
    query = (select(mail_sent.c.invoice_id, func.min(mail_sent.c.sent_at))
             .where(mail_sent.c.kind == "invoices").group_by(mail_sent.c.invoice_id))
    return {invoice_id: _aware(at) for invoice_id, at in conn.execute(query)}


def last_reminder(conn: Connection) -> dict[tuple[str, str], datetime]:
    """(customer, contact) -> when that contact was last sent a reminder."""
    query = (select(mail_sent.c.customer_id, mail_sent.c.contact_id, func.max(mail_sent.c.sent_at))
             .where(mail_sent.c.kind == "reminder").group_by(mail_sent.c.customer_id, mail_sent.c.contact_id))
    return {(c, k): _aware(at) for c, k, at in conn.execute(query)}


def unsubscribed(conn: Connection) -> set[tuple[str, str]]:
    return {(c, k) for c, k in conn.execute(select(mail_unsubscribes.c.customer_id, mail_unsubscribes.c.contact_id))}


def unsubscribe(conn: Connection, customer_id: str, contact_id: str, at: datetime) -> bool:
    """Record that a contact wants no more reminders; False when it already had (nothing written)."""
    exists = conn.execute(select(mail_unsubscribes.c.contact_id).where(
        mail_unsubscribes.c.customer_id == customer_id, mail_unsubscribes.c.contact_id == contact_id)).first()
    if exists:
        return False
    conn.execute(insert(mail_unsubscribes).values(customer_id=customer_id, contact_id=contact_id,
                                                  unsubscribed_at=at))
    return True


def _aware(value: datetime) -> datetime:
    # min/max take the column's type, so this is already aware; kept so a naive value can never slip through.
    return UTCDateTime().process_result_value(value, None) if value.tzinfo is None else value


@dataclass(frozen=True)
class Bounce:
    """One refused (message, recipient), ready to record; `invoice_ids` are the invoices the message named."""

    message_id: str
    recipient: str
    customer_id: str
    contact_id: str
    kind: str
    status: str
    diagnostic: str
    source: str
    bounced_at: datetime
    invoice_ids: tuple[str, ...] = ()


def record_bounce(conn: Connection, bounce: Bounce, now: datetime) -> bool:
    """Record a bounce and its `email_bounced` events; False (nothing written) when this message and recipient
    already bounced. Concurrent runs cannot both write it: the insert itself skips a conflicting row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    row = {"message_id": bounce.message_id, "recipient": bounce.recipient.lower(), "customer_id": bounce.customer_id,
           "contact_id": bounce.contact_id, "kind": bounce.kind, "status": bounce.status[:20],
           "diagnostic": bounce.diagnostic[:1000], "source": bounce.source, "bounced_at": bounce.bounced_at,
           "recorded_at": now}
    statement = dialect.insert(mail_bounces).values(**row).on_conflict_do_nothing(
        index_elements=["message_id", "recipient"]).returning(mail_bounces.c.bounce_id)
    if conn.execute(statement).first() is None:  # the pair bounced before: nothing written
        return False
    detail = f"{bounce.recipient.lower()} {bounce.status} {bounce.kind} {bounce.message_id}".strip()
    conn.execute(insert(events), [
        {"kind": "email_bounced", "occurred_at": bounce.bounced_at, "customer_id": bounce.customer_id,
         "contact_id": bounce.contact_id, "invoice_id": invoice_id, "document_id": "", "ip": "", "user_agent": "",
         "detail": detail}
        for invoice_id in (sorted(set(bounce.invoice_ids)) or [""])])
    return True


def sent_message(conn: Connection, message_id: str) -> list[tuple[str, str, str, str]]:
    """The (customer, contact, kind, invoice) rows recorded for an accepted message ([] when unknown)."""
    query = (select(mail_sent.c.customer_id, mail_sent.c.contact_id, mail_sent.c.kind, mail_sent.c.invoice_id)
             .where(mail_sent.c.message_id == message_id).order_by(mail_sent.c.mail_id))
    return [(r.customer_id, r.contact_id, r.kind, r.invoice_id) for r in conn.execute(query)]


def sent_through_ses(conn: Connection, ses_id: str) -> tuple[str, list[tuple[str, str, str, str]]]:
    """The Message-ID the SES transport recorded for SES's own message id (`<ID@REGION.amazonses.com>`), and the
    message's rows as `sent_message` gives them; ("", []) when unknown."""
    found = conn.execute(select(mail_sent.c.message_id).where(
        mail_sent.c.message_id.startswith(f"<{ses_id}@", autoescape=True),
        mail_sent.c.message_id.endswith(".amazonses.com>")).limit(1)).scalar()
    return (found, sent_message(conn, found)) if found else ("", [])
