"""What staff see of a customer's saved methods and autopay (the staff customer page): who is enrolled, with which
method, when and up to what, why it stopped, and what autopay did with each invoice (noticed, debited, failed,
waiting for the customer, reported); and on the customers list, whether each listed customer is enrolled and with
which kind of method (one query for the list). Read from the store only; staff change nothing here (the customer
decides)."""

from __future__ import annotations

from typing import Any

from portal.core.money import format_money
from portal.store import autopay as apstore
from portal.store.database import Store

KIND_TEXT = {"card": "card", "us_bank_account": "bank account"}
STATE_TEXT = {"noticed": "notice sent", "charging": "debit sent, answer pending", "charged": "debited",
              "failed": "failed, will retry", "needs_customer": "card needs the customer: link emailed",
              "reported": "failed for good: reported"}


def days(n: int) -> str:
    """"1 day", "3 days": English only (the staff pages are), so the plural rule is English's."""
    return f"{n} day" if n == 1 else f"{n} days"


def autopay_summary(store: Store, customer_id: str, currency: str) -> dict[str, Any]:
    with store.begin() as conn:
        methods = apstore.methods_of(conn, customer_id)
        choice = apstore.choice(conn, customer_id)
        charges = apstore.charges_of(conn, customer_id)
    by_id = {m.method_id: m for m in methods}
    method = by_id.get(choice.method_id) if choice else None
    return {
        "enrolled": bool(choice and choice.enabled),
        "method": f"{method.kind} {method.label} ····{method.last4}" if method else "",
        "timing": ("on the due date" if not choice.days_before else f"{days(choice.days_before)} before the due date")
        if choice else "",
        "cap": format_money(choice.cap, currency, "en_US") if choice and choice.cap is not None else "no cap",
        "stopped": choice.stopped_reason if choice and not choice.enabled else "",
        "methods": [f"{m.kind} {m.label} ····{m.last4}{'' if m.ready else ' (being verified)'}" for m in methods],
        "charges": [{"invoice_id": c.invoice_id, "due_date": c.due_date.isoformat(), "state": STATE_TEXT.get(
            c.state, c.state), "amount": format_money(c.amount, currency, "en_US"), "tries": c.tries,
            "failure": c.failure} for c in charges[-20:]],
    }


def with_autopay(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (dicts with customer_id), each given `autopay`: the kind of method autopay debits ("card", "bank
    account"), or "" when the customer is not enrolled."""
    with store.begin() as conn:
        kinds = apstore.enrolled_kinds(conn, [r["customer_id"] for r in rows]) if rows else {}
    listed = []
    for r in rows:
        kind = kinds.get(r["customer_id"], "")
        listed.append({**r, "autopay": KIND_TEXT.get(kind, kind)})
    return listed
