"""Applying a payment to its invoices and credit notes, once, when it first counts.

portal.payments.events calls `apply_allocations` in the transaction of the event that makes an attempt count
(money arrived, or a bank debit is under way: COUNTED). What each invoice can still take is computed by the
position rule (portal/balances/position.py) with the invoices locked, so two payments of one invoice are applied
one after the other; what the invoices cannot take (two tabs paid the same invoice) is kept as unapplied cash
for staff to apply by hand: never lost, never applied twice. Credits are used first, cash after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from portal.balances import journal, rule
from portal.store import payments as paystore
from portal.store.payments import Attempt
from portal.store.tables import credits, invoices

# Statuses in which a payment counts against its invoices (portal/balances/position.py says how much, per state).
COUNTED = rule.SETTLING | rule.PENDING


def apply_allocations(conn: Any, attempt: Attempt, as_of: datetime | None) -> dict[str, Any]:
    """How much each invoice can still take now that this payment counts; the rest is unapplied cash
    (two tabs paid the same invoice) that staff apply by hand. Never lost, never applied twice."""
    allocations = paystore.allocations_of(conn, attempt.attempt_id)
    epoch = as_of or datetime.min.replace(tzinfo=UTC)
    credit_rows = paystore.credits_of(conn, attempt.attempt_id)
    usable = _usable_credits(conn, attempt.attempt_id, credit_rows, epoch)
    cash = attempt.subtotal - sum(c.amount for c in credit_rows)
    funds = cash + sum(usable.values())
    ids = [a.invoice_id for a in allocations]
    # Lock the invoices (PostgreSQL): two payments of one invoice are applied one after the other.
    rows = {r.invoice_id: r for r in conn.execute(
        select(invoices.c.invoice_id, invoices.c.amount, invoices.c.balance, invoices.c.is_open)
        .where(invoices.c.invoice_id.in_(ids)).with_for_update())}
    # What each invoice owes now, without this payment (which has moved nothing yet: it counts from here on).
    moves = journal.entries(conn, invoice_ids=ids, item_kind="invoice")
    applied = {}
    for a in allocations:
        row = rows.get(a.invoice_id)
        open_now = 0 if row is None else rule.compute(
            row.amount, row.balance, epoch, moves.get(("invoice", a.invoice_id), ()), is_open=bool(row.is_open)).open
        applied[a.invoice_id] = min(a.amount, open_now, funds)
        funds -= applied[a.invoice_id]
    paystore.set_applied(conn, attempt.attempt_id, applied)
    # Credits are used first, cash after; credit the invoices could not take stays available.
    credit_used = left = min(sum(usable.values()), sum(applied.values()))
    for credit_id in usable:
        usable[credit_id] = min(usable[credit_id], left)
        left -= usable[credit_id]
    paystore.set_applied(conn, attempt.attempt_id, usable, credits=True)
    unapplied = cash - (sum(applied.values()) - credit_used)
    short = credit_used < sum(c.amount for c in credit_rows)
    return {"unapplied": unapplied, "credit_applied": credit_used, "needs_review": unapplied > 0 or short}


def _usable_credits(conn: Any, attempt_id: str, rows: list[Any], epoch: datetime) -> dict[str, int]:
    """How much of each chosen credit is still available (another payment may have used it meanwhile)."""
    if not rows:
        return {}
    ids = [r.credit_id for r in rows]
    notes = {r.credit_id: r for r in conn.execute(select(credits.c.credit_id, credits.c.amount, credits.c.balance)
                                                  .where(credits.c.credit_id.in_(ids)).with_for_update())}
    moves = journal.entries(conn, invoice_ids=ids, item_kind="credit")
    return {r.credit_id: min(r.amount, rule.compute(
        notes[r.credit_id].amount, notes[r.credit_id].balance, epoch, moves.get(("credit", r.credit_id), ())).open
        if r.credit_id in notes else 0) for r in rows}
