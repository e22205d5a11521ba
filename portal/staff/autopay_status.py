"""What staff see of a customer's saved methods and autopay (the staff customer page): who is enrolled, with which
method, when and up to what, why it stopped, and what autopay did with each invoice (noticed, debited, failed,
waiting for the customer, reported). Read from the store only; staff change nothing here (the customer decides)."""

from __future__ import annotations

from typing import Any

from portal.core.money import format_money
from portal.store import autopay as apstore
from portal.store.database import Store

STATE_TEXT = {"noticed": "notice sent", "charging": "debit sent, answer pending", "charged": "debited",
              "failed": "failed, will retry", "needs_customer": "card needs the customer: link emailed",
              "reported": "failed for good: reported"}


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
        "timing": ("on the due date" if not choice.days_before else f"{choice.days_before} days before the due date")
        if choice else "",
        "cap": format_money(choice.cap, currency, "en_US") if choice and choice.cap is not None else "no cap",
        "stopped": choice.stopped_reason if choice and not choice.enabled else "",
        "methods": [f"{m.kind} {m.label} ····{m.last4}{'' if m.ready else ' (being verified)'}" for m in methods],
        "charges": [{"invoice_id": c.invoice_id, "due_date": c.due_date.isoformat(), "state": STATE_TEXT.get(
            c.state, c.state), "amount": format_money(c.amount, currency, "en_US"), "tries": c.tries,
            "failure": c.failure} for c in charges[-20:]],
    }
