""""Send to my approver": the customer sends one of its invoices to the colleague who approves payments.

Guaranteed (docs/selfservice.md):
- The invoice is the page token's customer's and open; an approver chosen from the contacts must be that
  customer's (the export's, or an address it confirmed); anything else is refused and nothing is written.
- An address the customer types receives nothing until the collector confirmed it on /staff/approvals
  (`confirm_typed`): only then is the invoice link mailed (`approver_message` sends only for `sent` requests).
- The approver's link names one request of one customer at the current key version and expires with the
  emailed links (`link_ttl_days`); GET shows the invoice, only POST approves, once. Tampered, expired, foreign or
  revoked tokens record nothing.
- An approval is an event on the customer's timeline (`invoice_approved`, with the invoice) that staff see
  there and in the receipts' timeline of the invoice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from babel.dates import format_date

from portal.balances import position
from portal.core.config import Settings
from portal.core.errors import NotFound
from portal.core.i18n import N_, translations_for
from portal.core.money import format_money
from portal.core.signing import Signer, TokenInvalid
from portal.mail.messages import render_message
from portal.selfservice.common import SelfServiceRefused, clean_email, collector_address
from portal.store import approvals as store_approvals
from portal.store import jobqueue
from portal.store.approvals import ApprovalRequest
from portal.store.database import Store

MAX_REQUESTS_PER_DAY = 10
APPROVER_MAIL, CHECK_MAIL = "approval_request", "approver_check"
APPROVED_EVENT = "invoice_approved"


def request_approval(store: Store, customer_id: str, invoice_id: str, contact_id: str = "", email: str = "",
                     now: datetime | None = None) -> ApprovalRequest:
    """Record the request; mail a known approver now, or ask the collector about a typed address."""
    now = now or datetime.now(UTC)
    _version, invoice = store.access(customer_id, invoice_id)
    if invoice is None or not invoice.is_open:
        raise SelfServiceRefused(N_("This invoice cannot be sent for approval."))
    _name, current = store.customer_contacts(customer_id)
    if contact_id:
        contact = next((c for c in current if c.contact_id == contact_id), None)
        if contact is None:
            raise SelfServiceRefused(N_("Choose one of your approvers, or enter an address."))
        address, typed = contact.email, False
    else:
        address = clean_email(email)
        known = next((c for c in current if c.email.lower() == address.lower()), None)
        address, contact_id, typed = (known.email, known.contact_id, False) if known else (address, "", True)
    with store.begin() as conn:
        recent = [r for r in store_approvals.requests(conn, [customer_id]) if r.requested_at > now - timedelta(days=1)]
        if len(recent) >= MAX_REQUESTS_PER_DAY:
            raise SelfServiceRefused(N_("Too many approval requests were sent today. Please write to us instead."),
                                 429)
        request_id = "ar_" + secrets.token_hex(12)
        store_approvals.add(conn, request_id=request_id, customer_id=customer_id, invoice_id=invoice_id,
                            contact_id=contact_id, email=address, typed=typed, requested_at=now,
                            status=store_approvals.AWAITING if typed else store_approvals.SENT,
                            sent_at=None if typed else now)
        store.add_event(conn, "approval_requested", customer_id, invoice_id=invoice_id, detail=request_id)
        jobqueue.enqueue(conn, CHECK_MAIL if typed else APPROVER_MAIL, customer_id, {"request_id": request_id}, now)
        return store_approvals.get(conn, request_id)


def confirm_typed(store: Store, request_id: str, by: str, now: datetime | None = None) -> ApprovalRequest:
    """Staff: the collector checked a typed approver address; the invoice link goes out now."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        if not store_approvals.move(conn, request_id, store_approvals.AWAITING, store_approvals.SENT, sent_at=now):
            raise NotFound(f"approval request {request_id} is not waiting for a check")
        found = store_approvals.get(conn, request_id)
        store.add_event(conn, "approver_confirmed", found.customer_id, invoice_id=found.invoice_id,
                        detail=f"{request_id} by {by}")
        jobqueue.enqueue(conn, APPROVER_MAIL, found.customer_id, {"request_id": request_id}, now)
        return found


def refuse_typed(store: Store, request_id: str, by: str) -> ApprovalRequest:
    """Staff: the typed address is not one to send invoices to; nothing is ever mailed to it."""
    with store.begin() as conn:
        if not store_approvals.move(conn, request_id, store_approvals.AWAITING, store_approvals.REFUSED):
            raise NotFound(f"approval request {request_id} is not waiting for a check")
        return store_approvals.get(conn, request_id)


def awaiting(store: Store) -> list[ApprovalRequest]:
    with store.begin() as conn:
        return store_approvals.requests(conn, status=store_approvals.AWAITING)


@dataclass(frozen=True)
class ApprovalView:
    """What the approver's page shows: amounts from the balances rule, formatted for the customer."""

    request: ApprovalRequest
    customer_name: str
    number: str
    open_text: str
    amount_text: str
    due_text: str
    approved_text: str  # the invoice's first approval (portal/store/approvals.py): its date, "" when none yet
    approved_by: str  # and the approver's address


def request_for_token(store: Store, signer: Signer, token: str) -> ApprovalRequest:
    """The request an approver's link names, this customer's at its key version, sent; TokenInvalid otherwise."""
    claims = signer.read_action_token("approve", token)
    with store.begin() as conn:
        found = store_approvals.get(conn, claims.item)
        if found is None or found.customer_id != claims.customer_id or found.status not in (
                store_approvals.SENT, store_approvals.APPROVED):
            raise TokenInvalid("names no sent approval request of this customer")
        if store.active_key_version(claims.customer_id, conn) != claims.key_version:
            raise TokenInvalid("revoked or unknown customer")
    return found


def approval_view(store: Store, signer: Signer, token: str) -> ApprovalView:
    found = request_for_token(store, signer, token)
    data = store.customer_data([found.customer_id])[0]
    invoice = next((i for i in data.invoices if i.invoice_id == found.invoice_id), None)
    if invoice is None:
        raise TokenInvalid("the invoice is closed")
    with store.begin() as conn:
        pos = position.of_invoices(conn, [invoice.invoice_id])[invoice.invoice_id]
        first = store_approvals.approved_invoices(conn, [found.customer_id]).get(found.customer_id, {}).get(
            invoice.invoice_id)
    locale = data.customer.locale
    return ApprovalView(found, data.customer.name, invoice.number, format_money(pos.open, invoice.currency, locale),
                        format_money(invoice.amount, invoice.currency, locale),
                        format_date(invoice.due_date, "medium", locale=locale),
                        approved_on(first.approved_at, locale) if first else "", first.email if first else "")


def approved_on(approved_at: datetime, locale: str) -> str:
    """The date of an approval as the customer's pages write dates (Babel's medium format in its locale), of the UTC
    day the times are stored in, as every other date of the pages."""
    return format_date(approved_at.astimezone(UTC).date(), "medium", locale=locale)


def approve(store: Store, signer: Signer, token: str, now: datetime | None = None) -> ApprovalRequest:
    """Mark the invoice approved for payment (once); the timeline records it, the pages show it."""
    now = now or datetime.now(UTC)
    found = request_for_token(store, signer, token)
    with store.begin() as conn:
        if store_approvals.move(conn, found.request_id, store_approvals.SENT, store_approvals.APPROVED,
                                approved_at=now):
            store.add_event(conn, APPROVED_EVENT, found.customer_id, invoice_id=found.invoice_id,
                            detail=f"approved for payment by {found.email}")
            jobqueue.enqueue_refresh(conn, found.customer_id, now)
        return store_approvals.get(conn, found.request_id)


def approver_message(settings: Settings, store: Store, request_id: str) -> EmailMessage | None:
    """The approver's email with the link to the invoice: only for a request that is `sent` (a typed address the
    collector has not confirmed gets nothing)."""
    with store.begin() as conn:
        found = store_approvals.get(conn, request_id)
    version = store.active_key_version(found.customer_id) if found else None
    if found is None or found.status != store_approvals.SENT or not version:
        return None
    data = store.customer_data([found.customer_id])
    invoice = next((i for i in data[0].invoices if i.invoice_id == found.invoice_id), None) if data else None
    if invoice is None:
        return None
    token = Signer(settings).action_token("approve", found.customer_id, version, request_id)
    # The approver works for the customer: the mail is in the customer's language (customers.csv locale).
    locale = data[0].customer.locale
    t = translations_for(locale, settings.default_locale)
    return render_message(settings, "approval_request", ("", found.email),
                          t.gettext("Please approve invoice %(number)s for payment") % {"number": invoice.number},
                          locale=locale, customer_name=data[0].customer.name, number=invoice.number,
                          url=f"{settings.effective_webhook_url}/approve/{token}")


def check_message(settings: Settings, store: Store, request_id: str) -> EmailMessage | None:
    """The collector's request to check a typed approver address (staff mail: English)."""
    with store.begin() as conn:
        found = store_approvals.get(conn, request_id)
    data = store.customer_data([found.customer_id]) if found else []
    if not data or found.status != store_approvals.AWAITING:
        return None
    customer = data[0].customer
    number = next((i.number for i in data[0].invoices if i.invoice_id == found.invoice_id), found.invoice_id)
    return render_message(settings, "approver_check", ("", collector_address(settings, customer.collector)),
                          f"Check a new approver address for {customer.name} ({customer.customer_id})",
                          customer=customer, number=number, request=found,
                          url=f"{settings.effective_webhook_url}/staff/approvals")
