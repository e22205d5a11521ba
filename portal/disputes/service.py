"""Disputes and questions: what a customer may dispute, recording it, and the staff lifecycle.

Nothing here knows Flask. The webhook verifies the page token, then calls `submit_dispute` /
`submit_question` with what the browser sent; every invoice and amount is checked against the store here,
and every refusal (`DisputeRefused`) happens before anything is written: no row, no file, no email. The
attached files are checked and stored privately by portal/disputes/attachments.py.

Lifecycle (staff): open -> under_review -> resolved (outcome: credit issued, corrected invoice, rejected,
other). A resolution emails the customer's contacts on file. Nothing here renders a page or sends an email: the
build shows a dispute's state (portal/build/pages.py reads the labels below), so rendering from here would be a
cycle. Each change instead queues what follows it in its own transaction (portal/store/jobqueue.py): a
re-render of the customer's pages and the emails, which the job worker runs (portal/jobs/worker.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from gettext import NullTranslations
from typing import Any

from sqlalchemy import func, select

from portal.balances import position, stored
from portal.core.config import Settings
from portal.core.errors import NotFound
from portal.core.i18n import N_, translations_for
from portal.core.money import AmountError, format_money, input_amount, parse_typed_amount
from portal.disputes.attachments import Upload, attachment_path, check_uploads, discard, private_storage
from portal.disputes.errors import DisputeRefused
from portal.mail.messages import render_message
from portal.store import disputes as disputestore
from portal.store import jobqueue
from portal.store.database import Store
from portal.store.tables import contacts, customers, invoices

log = logging.getLogger(__name__)

REASON_LABELS = {
    "pricing": N_("Pricing"), "quantity": N_("Quantity / short shipment"), "damaged": N_("Damaged goods"),
    "not_received": N_("Not received"), "duplicate_billing": N_("Duplicate billing"), "po_mismatch": N_("PO mismatch"),
    "tax": N_("Tax"), "other": N_("Other"),
}
# English labels; customers see them through their translations (portal/core/i18n.py), staff as written.
OUTCOMES = {"credit_issued": N_("Credit issued"), "corrected_invoice": N_("Corrected invoice"),
            "rejected": N_("Rejected"), "other": N_("Other")}
# The same inside a sentence ("Dispute resolved: credit issued."): its own messages, as languages differ in case.
OUTCOME_PHRASE = {"credit_issued": N_("credit issued"), "corrected_invoice": N_("corrected invoice"),
                  "rejected": N_("rejected"), "other": N_("other")}
STATUS_TEXT = {"open": N_("In dispute"), "under_review": N_("Dispute under review"),
               "resolved": N_("Dispute resolved")}
MAX_MESSAGE = 5000
MAX_INVOICES = 100


@dataclass(frozen=True)
class Submitted:
    """A recorded dispute (or question): what the confirmation page and the collector's email show."""

    reference: str
    customer_id: str
    customer_name: str
    collector: str
    message: str
    numbers: tuple[str, ...] = ()
    amount_text: str = ""
    reason_label: str = ""
    attachments: tuple[str, ...] = field(default_factory=tuple)
    standing: tuple[str, ...] = ()  # where each invoice named stands now (position.standing)


def reason_label(code: str) -> str:
    return REASON_LABELS.get(code, code.replace("_", " ").capitalize())


def reason_choices(settings: Settings, t: NullTranslations | None = None) -> list[dict[str, str]]:
    """The configured reason codes with their labels, in the configured order (the form's options); `t`: the
    customer's translations (a configured reason without a built-in label is shown as configured)."""
    def label(code: str) -> str:
        return t.gettext(REASON_LABELS[code]) if t is not None and code in REASON_LABELS else reason_label(code)
    return [{"code": code, "label": label(code)} for code in settings.dispute_reasons]


def reference(dispute_id: int) -> str:
    return f"D-{dispute_id}"


def collector_address(settings: Settings, collector: str) -> str:
    """Who hears about a customer's disputes: its collector, else the AR inbox, else support."""
    return collector or settings.ar_inbox or settings.support_email


def _clean_message(message: str) -> str:
    text = (message or "").replace("\r\n", "\n").strip()
    if not text:
        raise DisputeRefused(N_("Please write a message that explains the problem."))
    if len(text) > MAX_MESSAGE:
        raise DisputeRefused(N_("The message is too long: at most %(max)d characters."), max=MAX_MESSAGE)
    return text


# --- submissions --------------------------------------------------------------------------------------------


def _customer(conn: Any, customer_id: str) -> Any:
    row = conn.execute(select(customers.c.name, customers.c.collector, customers.c.locale).where(
        customers.c.customer_id == customer_id)).first()
    if row is None:
        raise DisputeRefused(N_("This account is not known."))
    return row


def submit_dispute(store: Store, settings: Settings, customer_id: str, invoice_ids: Sequence[str],
                   amounts: Mapping[str, str], reason: str, message: str, uploads: Sequence[Upload] = (),
                   now: datetime | None = None) -> Submitted:
    """Check a dispute against the store and record it with its attachments, or raise DisputeRefused having
    written nothing. `amounts`: invoice id -> the amount typed (major units; blank: the whole disputable
    amount). The disputable amount is what is open less what other unresolved disputes already hold."""
    now = now or datetime.now(UTC)
    chosen = list(dict.fromkeys(i for i in invoice_ids if i))
    if not chosen:
        raise DisputeRefused(N_("Please choose at least one invoice to dispute."))
    if len(chosen) > MAX_INVOICES:
        raise DisputeRefused(N_("At most %(max)d invoices can be disputed at once."), max=MAX_INVOICES)
    if reason not in settings.dispute_reasons:
        raise DisputeRefused(N_("Please choose a reason from the list."))
    text = _clean_message(message)
    files = check_uploads(uploads)
    storage = private_storage(settings)
    written: list[str] = []
    try:
        with store.begin() as conn:
            person = _customer(conn, customer_id)
            # Locked (PostgreSQL): a payment and a dispute of one invoice are decided one after the other.
            rows = {r.invoice_id: r for r in conn.execute(
                select(invoices).where(invoices.c.customer_id == customer_id, invoices.c.invoice_id.in_(chosen))
                .with_for_update())}
            standing = position.of_invoices(conn, list(rows))
            items, currencies = [], set()
            for invoice_id in chosen:
                row = rows.get(invoice_id)
                if row is None:
                    # Another customer's invoice, or none at all: the same words, nothing revealed.
                    raise DisputeRefused(N_("One of the chosen invoices is not on your account."))
                if not row.is_open:
                    raise DisputeRefused(N_("Invoice %(number)s is no longer open: there is nothing left to dispute."),
                                         number=row.number)
                disputable = standing[invoice_id].due
                if disputable <= 0:
                    raise DisputeRefused(N_("Invoice %(number)s has nothing left to dispute: it is paid, has a "
                                            "payment pending, or is already in dispute in full."), number=row.number)
                typed = (amounts.get(invoice_id) or "").strip()
                if typed:
                    try:
                        amount = parse_typed_amount(typed, row.currency, person.locale)
                    except (AmountError, ValueError):
                        raise DisputeRefused(N_("The amount for invoice %(number)s is not a valid amount: write it "
                                                "like %(example)s."), number=row.number,
                                             example=input_amount(123450, row.currency, person.locale)) from None
                    if amount <= 0 or amount > disputable:
                        raise DisputeRefused(N_("The disputed amount for invoice %(number)s must be more than zero "
                                                "and at most %(amount)s."), number=row.number,
                                             amount=format_money(disputable, row.currency, person.locale or "en_US"))
                else:
                    amount = disputable
                currencies.add(row.currency)
                items.append({"invoice_id": invoice_id, "number": row.number, "amount": amount})
            if len(currencies) > 1:
                raise DisputeRefused(N_("Invoices in different currencies must be disputed separately."))
            currency = currencies.pop()
            total = sum(i["amount"] for i in items)
            dispute_id = disputestore.insert_dispute(conn, {
                "customer_id": customer_id, "status": "open", "reason": reason, "amount": total,
                "currency": currency, "message": text, "outcome": "", "note": "", "updated_by": "",
                "created_at": now, "reviewed_at": None, "resolved_at": None,
            }, items, [{"n": n, "filename": name, "path": "", "content_type": kind, "size": len(u.data),
                        "sha256": hashlib.sha256(u.data).hexdigest()}
                       for n, (u, kind, name) in enumerate(files, start=1)])
            paths = {}
            for n, (u, kind, name) in enumerate(files, start=1):
                path = attachment_path(dispute_id, n, name)
                storage.write(path, u.data, kind)
                written.append(path)
                paths[n] = path
            disputestore.set_attachment_paths(conn, dispute_id, paths)
            store.add_event(conn, "dispute_opened", customer_id, detail=reference(dispute_id))
            # The amount disputed is held from now on: the invoices' positions move in this transaction.
            stored.refresh(conn, [i["invoice_id"] for i in items])
            standing = position.standing(conn, [(i["invoice_id"], i["number"], currency) for i in items])
            submitted = Submitted(reference(dispute_id), customer_id, person.name, person.collector, text,
                                  tuple(i["number"] for i in items), format_money(total, currency, "en_US"),
                                  reason_label(reason), tuple(name for _, _, name in files), standing)
            # What follows (the pages show the dispute, the collector is told) is queued with it: nothing is lost
            # if the process dies once this commits (docs/refresh.md).
            jobqueue.enqueue_refresh(conn, customer_id, now)
            jobqueue.enqueue(conn, "dispute_mail", customer_id, {**asdict(submitted), "kind": "dispute"}, now)
    except BaseException:
        discard(storage, written)
        raise
    return submitted


def submit_question(store: Store, customer_id: str, invoice_id: str, message: str,
                    now: datetime | None = None, email: str = "") -> Submitted:
    """Record a question (optionally about one of the customer's invoices, and from the contact on file whose
    address is `email`: the answer goes to them); returns its reference. An address typed that is not on file
    is refused, never stored: answers go only to addresses on file."""
    now = now or datetime.now(UTC)
    text = _clean_message(message)
    with store.begin() as conn:
        person = _customer(conn, customer_id)
        contact_id = ""
        if email.strip():
            contact_id = conn.execute(select(contacts.c.contact_id).where(
                contacts.c.customer_id == customer_id,
                func.lower(contacts.c.email) == email.strip().lower()[:320])).scalar() or ""
            if not contact_id:
                raise DisputeRefused("That email address is not one we have on file for your account. Leave it "
                                     "empty and we will answer the billing contacts we have on file.")
        numbers: tuple[str, ...] = ()
        if invoice_id:
            number = conn.execute(select(invoices.c.number).where(
                invoices.c.customer_id == customer_id, invoices.c.invoice_id == invoice_id)).scalar()
            if number is None:
                raise DisputeRefused(N_("That invoice is not on your account."))
            numbers = (number,)
        question_id = disputestore.insert_question(conn, customer_id, invoice_id, text, now, contact_id)
        store.add_event(conn, "question_asked", customer_id, invoice_id=invoice_id, detail=f"Q-{question_id}")
        submitted = Submitted(f"Q-{question_id}", customer_id, person.name, person.collector, text, numbers)
        jobqueue.enqueue(conn, "question_mail", customer_id, {**asdict(submitted), "kind": "question"}, now)
    return submitted


def collector_message(settings: Settings, submitted: Submitted, kind: str) -> EmailMessage:
    """The email to the collector about a new dispute (`kind` "dispute") or question ("question")."""
    to = collector_address(settings, submitted.collector)
    what = "Dispute" if kind == "dispute" else "Question"
    # One line whatever the ERP put in the name: a header may not contain a line break.
    subject = f"{what} {submitted.reference} from {' '.join(submitted.customer_name.split())}"
    return render_message(settings, f"{kind}_received", ("", to), subject, s=submitted)


# --- the staff lifecycle ------------------------------------------------------------------------------------


def _unresolved(conn: Any, dispute_id: int) -> disputestore.DisputeRow:
    """The dispute, locked for the transaction; refused when it does not exist or is resolved already."""
    row = disputestore.get_dispute(conn, int(dispute_id), lock=True)
    if row is None:
        raise NotFound(f"dispute {dispute_id} does not exist")
    if row.status == "resolved":
        raise DisputeRefused(f"dispute {reference(row.dispute_id)} is already resolved")
    return row


def review(store: Store, dispute_id: int, by: str, now: datetime | None = None) -> disputestore.DisputeRow:
    """open -> under_review, queuing a re-render of the customer's pages (they show the status). Reviewing one
    already under review changes nothing; a resolved one is refused."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        row = _unresolved(conn, dispute_id)
        if row.status == "open":
            disputestore.update_dispute(conn, row.dispute_id, status="under_review", reviewed_at=now,
                                        updated_by=by[:320])
            store.add_event(conn, "dispute_under_review", row.customer_id, detail=reference(row.dispute_id))
            jobqueue.enqueue_refresh(conn, row.customer_id, now)
        reviewed = disputestore.get_dispute(conn, row.dispute_id)
    return reviewed  # type: ignore[return-value]


def resolve(store: Store, dispute_id: int, outcome: str, note: str, by: str,
            now: datetime | None = None) -> disputestore.DisputeRow:
    """open/under_review -> resolved with an outcome and a note. Queued with it, in this order: the re-render of
    the customer's pages, then the email to the customer's contacts on file (`resolution_messages`). Jobs of one
    customer run one at a time, oldest first (portal/store/jobqueue.py), so the email's link opens a page that
    already shows the resolution."""
    if outcome not in OUTCOMES:
        raise DisputeRefused(f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        row = _unresolved(conn, dispute_id)
        disputestore.update_dispute(conn, row.dispute_id, status="resolved", outcome=outcome, note=note[:5000],
                                    resolved_at=now, updated_by=by[:320],
                                    reviewed_at=row.reviewed_at or now)
        store.add_event(conn, "dispute_resolved", row.customer_id, detail=f"{reference(row.dispute_id)} {outcome}")
        items = disputestore.items_of(conn, row.dispute_id)
        # The hold ends: the invoices' positions move in this transaction.
        stored.refresh(conn, [i.invoice_id for i in items])
        jobqueue.enqueue_refresh(conn, row.customer_id, now)
        jobqueue.enqueue(conn, "resolution_mail", row.customer_id, {"dispute_id": row.dispute_id}, now)
        resolved = disputestore.get_dispute(conn, row.dispute_id)
    return resolved  # type: ignore[return-value]


def resolution_messages(settings: Settings, store: Store, dispute_id: int) -> list[EmailMessage]:
    """The "your dispute is resolved" email to each billing contact (every contact when none is billing), saying
    where the invoices stand when it is sent."""
    with store.begin() as conn:
        row = disputestore.get_dispute(conn, dispute_id)
        if row is None:
            return []
        items = disputestore.items_of(conn, dispute_id)
        locale = store.customer_locale(row.customer_id, conn) or settings.default_locale
        standing = position.standing(conn, [(i.invoice_id, i.number, row.currency) for i in items], locale)
    name, contacts = store.customer_contacts(row.customer_id)
    recipients = [c for c in contacts if c.role == "billing"] or contacts
    t = translations_for(locale, settings.default_locale)
    subject = t.gettext("Your dispute %(reference)s is resolved · %(company)s") % {
        "reference": reference(row.dispute_id), "company": settings.company_name}
    outcome = OUTCOMES.get(row.outcome)
    return [render_message(
        settings, "dispute_resolved", (contact.name, contact.email), subject, locale=locale,
        customer_name=name, reference=reference(row.dispute_id), numbers=[i.number for i in items],
        outcome_text=t.gettext(outcome) if outcome else row.outcome, note=row.note, standing=list(standing),
        amount_text=format_money(row.amount, row.currency, locale)) for contact in recipients]
