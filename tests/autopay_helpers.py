"""What the autopay tests share: saving a method through the webhook and the stand-in's setup session, turning
autopay on, running `portal autopay`'s function as of a moment, and reading what it recorded."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

from portal.balances import position, rule
from portal.payments.autopay_run import run_autopay
from portal.payments.methods import stripe_client
from portal.store import autopay as apstore
from tests.payfixtures import page_token, stripe_signature


def deliver(client, standin, kind: str, obj: dict):
    payload = json.dumps(standin.event(kind, obj))
    return client.post("/stripe/events", data=payload, headers={
        "Stripe-Signature": stripe_signature(payload), "Content-Type": "application/json"})


def enrol(client, standin, settings, customer_id: str, kind: str = "card", number: str = "") -> str:
    """Save a method the way a customer does; the new method's id."""
    answer = client.post("/methods/setup", data={"page_token": page_token(settings, customer_id), "kind": kind})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    session = standin.sessions[answer.headers["Location"].rsplit("/", 1)[-1]]
    events = standin.complete_setup(session, number)
    for event_kind, obj in events:
        assert deliver(client, standin, event_kind, obj).status_code == 200
    return next(obj["id"] for event_kind, obj in events if event_kind == "payment_method.attached")


def turn_on(client, settings, customer_id: str, method_id: str, timing: str = "due", days: str = "", cap: str = ""):
    return client.post("/autopay", data={"page_token": page_token(settings, customer_id), "action": "on",
                                         "method": method_id, "timing": timing, "days": days, "cap": cap})


def at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def run(settings, store, now: datetime):
    return run_autopay(settings, store, stripe_client(settings), now)


def askable(store, customer_id: str) -> dict[str, rule.Position]:
    with store.begin() as conn:
        standing = position.of_invoices(conn, customer_ids=[customer_id])
    return {i: p for i, p in standing.items() if p.status in rule.ASKABLE and p.due > 0}


def latest_due(store, customer_id: str, invoices) -> tuple[str, date]:
    """The askable invoice due last (id, due date)."""
    open_ = askable(store, customer_id)
    inv = max((i for i in invoices if i.invoice_id in open_), key=lambda i: (i.due_date, i.invoice_id))
    return inv.invoice_id, inv.due_date


def charges(store, customer_id: str) -> dict[str, apstore.Charge]:
    with store.begin() as conn:
        return {c.invoice_id: c for c in apstore.charges_of(conn, customer_id)}


def intents_created(standin) -> list:
    return [r for r in standin.requests if r.method == "POST" and r.path == "/v1/payment_intents"]

