"""`portal send`: one email per contact listing its new or changed open invoices, each with a signed link.

An invoice is listed only while its position (portal/balances/position.py) may be asked for money (open, partly paid),
for what it owes now; a contact with nothing to be asked for gets no email.

Shared by reminders and the digest: `deliver` hands each message to the transport (retrying transient
failures), records it only once the transport accepted it, and reports every message. When the transport
stays down after its retries, the rest of the run is not attempted (each message would wait through the
same retries) and is reported so; nothing unsent is recorded, so the next run sends exactly the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage

from babel.dates import format_date
from sqlalchemy import select

from portal.balances import position, rule
from portal.core.config import Settings
from portal.core.links import link_url
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.export.model import Contact, Invoice
from portal.mail.transport import MailError, Transport, one_line, render_message, send_with_retry, transport_from_url
from portal.store.database import CustomerData, Store
from portal.store.mail import SentRow, record_sent, sent_hashes
from portal.store.tables import invoices

SEND_ROLES = ("billing", "approver")  # "other" contacts (e.g. a sales rep) get no invoice mail


@dataclass
class Outgoing:
    """A message ready to hand over, and what to record once it is accepted."""

    kind: str
    customer_id: str
    contact_id: str
    email: str
    message: EmailMessage
    rows: list[SentRow]
    invoice_numbers: list[str]


@dataclass
class MessageReport:
    kind: str
    customer_id: str
    contact_id: str
    email: str
    invoice_numbers: list[str]
    status: str  # sent | would send | failed | not attempted
    message_id: str = ""
    error: str = ""


@dataclass
class SendResult:
    """What a run sent (or, with dry_run, would send), message by message."""

    dry_run: bool
    messages: list[MessageReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why contacts or invoices got nothing, for the summary

    def having(self, status: str) -> list[MessageReport]:
        return [m for m in self.messages if m.status == status]

    @property
    def ok(self) -> bool:
        return not self.having("failed") and not self.having("not attempted")

    def summary(self) -> str:
        lines = []
        for m in self.messages:
            numbers = ", ".join(m.invoice_numbers) or "-"
            extra = f" ({m.error})" if m.error else ""
            lines.append(f"{m.status}: {m.kind} to {m.email} [{m.customer_id}/{m.contact_id}] invoices {numbers}"
                         f"{extra}")
        lines.extend(f"skipped: {reason}" for reason in self.skipped)
        verb = "would send" if self.dry_run else "sent"
        lines.append(f"{len(self.having('would send' if self.dry_run else 'sent'))} message(s) {verb}, "
                     f"{len(self.having('failed'))} failed, {len(self.having('not attempted'))} not attempted, "
                     f"{len(self.skipped)} skipped")
        return "\n".join(lines)


def deliver(settings: Settings, store: Store, outgoing: Iterable[Outgoing], dry_run: bool, now: datetime,
            transport: Transport | None = None, sleep: Callable[[float], None] = time.sleep,
            result: SendResult | None = None) -> SendResult:
    """Send each message and record it right after the transport accepted it (one transaction per message)."""
    result = result or SendResult(dry_run)
    if not dry_run and transport is None:
        transport = transport_from_url(settings.mail_url)
    down = ""
    for out in outgoing:
        report = MessageReport(out.kind, out.customer_id, out.contact_id, out.email, out.invoice_numbers,
                               "would send" if dry_run else "not attempted")
        result.messages.append(report)
        if dry_run:
            continue
        if down:
            report.error = f"transport unavailable: {down}"
            continue
        assert transport is not None
        try:
            message_id = send_with_retry(transport, out.message, settings.mail_attempts,
                                         settings.mail_retry_delay_ms / 1000, sleep)
        except MailError as exc:
            report.status, report.error = "failed", exc.message
            if exc.transient:  # still failing after every retry: the relay is down, not this address
                down = exc.message
            continue
        except OSError as exc:  # the outbox folder cannot be written: no later message will fare better
            report.status = "failed"
            report.error = down = f"{exc.__class__.__name__}: {exc}"
            continue
        report.status, report.message_id = "sent", message_id
        with store.begin() as conn:
            record_sent(conn, out.kind, message_id, now, out.rows)
    return result


def money(minor: int, currency: str, locale: str) -> str:
    return format_money(minor, currency, locale)


def day(value: date, locale: str) -> str:
    return format_date(value, "medium", locale=locale)


def invoice_items(settings: Settings, signer: Signer, data: CustomerData, contact: Contact,
                  chosen: list[Invoice], positions: dict[str, rule.Position],
                  notes: dict[str, str] | None = None) -> list[dict[str, object]]:
    """What the templates show per invoice: number, dates, amounts formatted in the customer's locale, link.
    `balance` is what the invoice's position says may be asked for now (portal/balances/position.py), never the export's
    balance; `status` the position's status."""
    locale, cid = data.customer.locale, data.customer.customer_id
    return [{"number": inv.number, "issue_date": day(inv.issue_date, locale), "due_date": day(inv.due_date, locale),
             "amount": money(inv.amount, inv.currency, locale),
             "balance": money(positions[inv.invoice_id].due, inv.currency, locale),
             "status": positions[inv.invoice_id].status,
             "po_number": inv.po_number, "note": (notes or {}).get(inv.invoice_id, ""),
             "url": link_url(settings, signer, cid, contact.contact_id, inv.invoice_id, data.key_version)}
            for inv in chosen]


def total_text(data: CustomerData, chosen: list[Invoice], positions: dict[str, rule.Position]) -> str:
    """The total of what the listed invoices' positions ask for, when they share one currency (otherwise no
    total is shown)."""
    currencies = {inv.currency for inv in chosen}
    if len(currencies) != 1:
        return ""
    return money(sum(positions[inv.invoice_id].due for inv in chosen), currencies.pop(), data.customer.locale)


def send_invoices(settings: Settings, store: Store, dry_run: bool = False, customer_ids: Iterable[str] | None = None,
                  resend: bool = False, now: datetime | None = None, transport: Transport | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Email each billing or approver contact the open invoices it has not been sent in their current form.

    An invoice goes to a contact again only when its content hash changed since (the ERP changed it) or
    with `resend`. Only addresses from the export are ever used.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)  # calendar days are UTC days
    signer = Signer(settings)
    data = store.customer_data(None if customer_ids is None else set(customer_ids))
    with store.begin() as conn:
        source = position.inputs(conn, [d.customer.customer_id for d in data])
        already = sent_hashes(conn)
        hashes = dict(conn.execute(select(invoices.c.invoice_id, invoices.c.content_hash)
                                   .where(invoices.c.is_open)).all())
    result = SendResult(dry_run)
    outgoing = []
    for d in data:
        cid = d.customer.customer_id
        positions = {inv.invoice_id: source.invoice(inv.invoice_id, inv.amount, inv.balance, d.as_of)
                     for inv in d.invoices}
        for contact in d.contacts:
            if contact.role not in SEND_ROLES:
                continue
            chosen, notes = [], {}
            for inv in d.invoices:
                earlier = already.get((cid, contact.contact_id, inv.invoice_id), set())
                # Only what may be asked for: never an invoice that is paid, has a payment pending or is in
                # dispute (it goes out once it may be asked for again, e.g. after a refund).
                if not positions[inv.invoice_id].askable or (hashes[inv.invoice_id] in earlier and not resend):
                    continue
                chosen.append(inv)
                if earlier and hashes[inv.invoice_id] not in earlier:
                    notes[inv.invoice_id] = "updated"
            if not chosen:
                continue
            message = invoices_message(settings, signer, d, contact, chosen, notes, positions)
            rows = [SentRow(cid, contact.contact_id, inv.invoice_id, hashes[inv.invoice_id]) for inv in chosen]
            outgoing.append(Outgoing("invoices", cid, contact.contact_id, contact.email, message, rows,
                                     [inv.number for inv in chosen]))
    return deliver(settings, store, outgoing, dry_run, now, transport, sleep, result)


def invoices_message(settings: Settings, signer: Signer, data: CustomerData, contact: Contact,
                     chosen: list[Invoice], notes: dict[str, str],
                     positions: dict[str, rule.Position]) -> EmailMessage:
    cid = data.customer.customer_id
    if len(chosen) == 1:
        subject = f"Invoice {one_line(chosen[0].number)} from {one_line(settings.company_name)}"
    else:
        subject = f"{len(chosen)} invoices from {one_line(settings.company_name)}"
    return render_message(
        settings, "invoices", (contact.name, contact.email), subject,
        customer_name=data.customer.name, contact_name=contact.name,
        items=invoice_items(settings, signer, data, contact, chosen, positions, notes),
        total=total_text(data, chosen, positions),
        account_url=link_url(settings, signer, cid, contact.contact_id, "", data.key_version),
        ttl_days=settings.link_ttl_days)
