"""A customer's payment history: every portal payment with its allocation to invoices and credit notes.

What it shows is what the store recorded, never worked out again: the attempt's amounts (what Stripe charged, the
discount or fee, the credits used), each allocation's amount (what the invoice TOOK when the payment counted, or,
for a payment that never counted, what the customer chose), and from the journal of money movements
(portal/balances/journal.py) the moment a payment settled. Attempts that never became a payment (abandoned at
checkout: `created`, `expired`) are not history.

A receipt exists for a payment that is settled now (rule.SETTLING): a refunded or charged-back payment keeps its
line in the history with its state, but no receipt claims money we no longer hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from portal.balances.rule import PENDING, SETTLING, Entry
from portal.store import payments as paystore
from portal.store.positions import position_entries

NOT_A_PAYMENT = frozenset({"created", "expired"})
# The four words a customer sees (the attempt's states are finer than a customer needs).
STATE = {"processing": "pending", "succeeded": "settled", "reinstated": "settled", "partially_refunded": "settled",
         "refunded": "refunded", "failed": "failed", "disputed": "charged back"}


@dataclass(frozen=True)
class Allocation:
    kind: str  # "invoice" or "credit"
    item_id: str
    number: str
    amount: int


@dataclass(frozen=True)
class Payment:
    attempt_id: str
    customer_id: str
    status: str  # the attempt's state
    method: str
    currency: str
    subtotal: int  # allocated to invoices (before credits and the method's adjustment)
    adjustment: int  # discount (negative) or fee (positive)
    amount: int  # what Stripe charged
    credit_applied: int
    refunded: int
    unapplied: int
    failure_reason: str
    created_at: datetime
    settled_at: datetime | None  # when money last settled on its items (the journal), None if never
    invoices: list[Allocation] = field(default_factory=list)
    credits: list[Allocation] = field(default_factory=list)

    @property
    def state(self) -> str:
        return STATE.get(self.status, self.status)

    @property
    def has_receipt(self) -> bool:
        return self.status in SETTLING

    @property
    def counted(self) -> bool:
        return self.status in SETTLING or self.status in PENDING


def history(conn: Connection, customer_ids: Iterable[str]) -> dict[str, list[Payment]]:
    """customer id -> its payments, newest first."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    pa, al, cr, pe = (paystore.payment_attempts.c, paystore.payment_allocations.c, paystore.payment_credits.c,
                      position_entries.c)
    settled_at = dict(conn.execute(
        select(pe.attempt_id, func.max(pe.recorded_at)).where(pe.customer_id.in_(ids), pe.settled > 0)
        .group_by(pe.attempt_id)).all())
    rows = conn.execute(select(paystore.payment_attempts).where(pa.customer_id.in_(ids),
                                                                pa.status.not_in(sorted(NOT_A_PAYMENT)))
                        .order_by(pa.created_at.desc(), pa.attempt_id)).all()
    wanted = [r.attempt_id for r in rows]
    lines: dict[str, list[Allocation]] = {}
    credit_lines: dict[str, list[Allocation]] = {}
    counted = {r.attempt_id for r in rows if r.status in SETTLING or r.status in PENDING or r.counted_at}
    for table, column, target, kind in ((paystore.payment_allocations, al.invoice_id, lines, "invoice"),
                                        (paystore.payment_credits, cr.credit_id, credit_lines, "credit")):
        for r in conn.execute(select(table.c.attempt_id, column.label("item"), table.c.number, table.c.amount,
                                     table.c.applied).where(table.c.attempt_id.in_(wanted))
                              .order_by(table.c.attempt_id, table.c.number, column)):
            amount = r.applied if r.attempt_id in counted and r.applied else r.amount
            target.setdefault(r.attempt_id, []).append(Allocation(kind, r.item, r.number, amount))
    result: dict[str, list[Payment]] = {}
    for r in rows:
        result.setdefault(r.customer_id, []).append(Payment(
            r.attempt_id, r.customer_id, r.status, r.method, r.currency, r.subtotal, r.adjustment, r.amount,
            r.credit_applied, r.refunded, r.unapplied, r.failure_reason, r.created_at,
            settled_at.get(r.attempt_id), lines.get(r.attempt_id, []), credit_lines.get(r.attempt_id, [])))
    return result


def paid_on(entries: Iterable[Entry]) -> datetime | None:
    """When an item's money last settled in the portal (the journal's movements of it): the "Paid on" date of an
    invoice whose position is paid."""
    found = [e.at for e in entries if e.settled > 0]
    return max(found) if found else None


def receipt_reference(conn: Connection, customer_id: str, attempt_id: str) -> str | None:
    """The reference of a receipt that may be downloaded: the payment is this customer's and settled now."""
    found = paystore.get_attempt(conn, attempt_id)
    if found is None or found.customer_id != customer_id or found.status not in SETTLING:
        return None
    return found.attempt_id
