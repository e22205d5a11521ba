"""The payments reports: every payment attempt (`portal report payments`) and the cash-application file for the
ERP (`portal report cash-application`, the dashboard's cash-application.csv).

Amounts are integer minor units in `payments` and decimal strings in major units in the cash-application file
(as in the export); what each invoice paid owes now comes from its stored position (portal/staff/standing.py).
"""

from __future__ import annotations

from typing import Any

from portal.balances import journal, rule, stored
from portal.core.money import to_decimal
from portal.staff.csvcells import iso_utc
from portal.staff.exports import to_csv
from portal.staff.standing import standing
from portal.store import payments as paystore
from portal.store.database import Store

PAYMENT_COLUMNS = [
    "attempt_id", "customer_id", "status", "method", "amount", "currency", "subtotal", "adjustment", "unapplied",
    "credit_applied",
    "refunded", "needs_review", "payer_email", "stripe_checkout_session", "stripe_payment_intent", "stripe_charge",
    "failure_reason", "created_at", "updated_at", "allocations", "credits",
]


def payments(store: Store) -> list[dict[str, Any]]:
    """One dict per payment attempt, oldest first. Amounts in minor units; `allocations` is a list of
    `{invoice_id, number, amount, applied}` (`applied` is what the invoice could take when the payment
    counted; the rest of the cash is `unapplied` and the attempt `needs_review`), `credits` a list of
    `{credit_id, number, amount, applied}` (credit notes used towards the invoices)."""
    with store.begin() as conn:
        attempts = paystore.all_attempts(conn)
        allocations = paystore.all_allocations(conn)
        credit_rows = paystore.all_allocations(conn, credits=True)
        now = stored.stored(conn)
    return [{
        "attempt_id": a.attempt_id, "customer_id": a.customer_id, "status": a.status, "method": a.method,
        "amount": a.amount, "currency": a.currency, "subtotal": a.subtotal, "adjustment": a.adjustment,
        "unapplied": a.unapplied, "credit_applied": a.credit_applied, "refunded": a.refunded,
        "needs_review": a.needs_review,
        "payer_email": a.payer_email, "stripe_checkout_session": a.checkout_session or None,
        "stripe_payment_intent": a.payment_intent or None, "stripe_charge": a.charge or None,
        "failure_reason": a.failure_reason, "created_at": iso_utc(a.created_at), "updated_at": iso_utc(a.updated_at),
        "allocations": [{"invoice_id": r.invoice_id, "number": r.number, "amount": r.amount, "applied": r.applied,
                         **standing(now.get(r.invoice_id))} for r in allocations.get(a.attempt_id, [])],
        "credits": [{"credit_id": r.credit_id, "number": r.number, "amount": r.amount, "applied": r.applied}
                    for r in credit_rows.get(a.attempt_id, [])],
    } for a in attempts]


CASH_APPLICATION_COLUMNS = [
    "payment", "date", "customer_id", "invoice_id", "number", "amount_applied", "currency", "method",
    "stripe_payment_intent", "stripe_charge", "fee_or_discount", "status", "invoice_open", "invoice_status",
]
# Money the ERP should apply: settled payments (a partial refund stays, flagged for staff in `payments`).
_CASH_STATUSES = {"succeeded", "partially_refunded", "reinstated"}


def cash_application(store: Store) -> list[dict[str, Any]]:
    """Rows for the ERP's cash application: one per invoice a settled payment paid, plus one row with an empty
    invoice for cash no invoice could take (unapplied), and one negative row per credit note used (method
    `credit`, its number in `number`), so a payment's rows sum to the cash it brought in and kept. Amounts are
    what the payment settles on each item now (portal/balances/position.py's journal: a partial refund takes back
    unapplied cash first, then the last invoice's), in major units (as in the export); the payment's discount
    (negative) or fee (positive) is on its first row only. `invoice_open` / `invoice_status`: where the invoice
    stands now (its position), empty on the other rows."""
    with store.begin() as conn:
        settled = journal.settled_by_attempt(conn)
    rows = []
    for p in payments(store):
        if p["status"] not in _CASH_STATUSES:
            continue
        def row(invoice_id: str, number: str, minor: int, adjustment: int, p: dict = p, method: str = "",
                standing: dict | None = None) -> dict[str, Any]:
            standing = standing or {"open": None, "status": None}
            return {"payment": p["attempt_id"], "date": (p["updated_at"] or "")[:10], "customer_id": p["customer_id"],
                    "invoice_id": invoice_id, "number": number,
                    "amount_applied": str(to_decimal(minor, p["currency"])), "currency": p["currency"],
                    "method": method or p["method"], "stripe_payment_intent": p["stripe_payment_intent"],
                    "stripe_charge": p["stripe_charge"], "fee_or_discount": str(to_decimal(adjustment, p["currency"])),
                    "status": p["status"],
                    "invoice_open": None if standing["open"] is None else str(to_decimal(standing["open"],
                                                                                         p["currency"])),
                    "invoice_status": standing["status"]}
        adjustment = p["adjustment"]
        for alloc in p["allocations"]:
            amount = settled.get((p["attempt_id"], "invoice", alloc["invoice_id"]), 0)
            if amount:
                rows.append(row(alloc["invoice_id"], alloc["number"], amount, adjustment,
                                standing={"open": alloc["open"], "status": alloc["status"]}))
                adjustment = 0
        kept = rule.unapplied_kept(p["status"], p["refunded"], p["unapplied"])
        if kept:
            rows.append(row("", "", kept, adjustment))
            adjustment = 0
        for credit in p["credits"]:
            amount = settled.get((p["attempt_id"], "credit", credit["credit_id"]), 0)
            if amount:
                rows.append(row("", credit["number"], -amount, adjustment, method="credit"))
                adjustment = 0
    return rows


def cash_application_csv(store: Store) -> str:
    """The cash application file (CSV with a header row) for `portal report cash-application`."""
    return to_csv(cash_application(store), CASH_APPLICATION_COLUMNS)
