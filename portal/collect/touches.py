"""Touches: what a collector did about a customer (a call and its outcome, an email sent outside the portal, a
note), and what the portal sent by itself (recorded by the mail features: portal/store/collect.py).

Guarantees:
- a touch names only invoices of its own customer (checked against the store, never taken from the form);
- a touch counts for the staff user who logged it; the portal's emails count for the customer's collector at
  sending time;
- notes are shared with the team unless `collect_private_notes` is on; then a collector reads only their own
  notes, managers and admins every note (portal/collect/access.py). The filter is in the query, so a page or an
  export built on `customer_touches` cannot show a hidden note by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from portal.collect.access import Actor, CollectRefused, require_worker
from portal.store.collect import insert_touch, record_portal_touch, touch_invoices, touches
from portal.store.database import Store
from portal.store.tables import customers, invoices

KINDS = ("call", "email", "note")  # what staff log; the portal's own emails are "portal_email"
OUTCOMES = {"reached": "Reached", "voicemail": "Left a voicemail", "no_answer": "No answer",
            "wrong_number": "Wrong number"}
MAX_BODY = 5000
MAX_INVOICES = 200


def customer_exists(conn: Connection, customer_id: str) -> bool:
    return conn.execute(select(customers.c.customer_id).where(customers.c.customer_id == customer_id)).first() \
        is not None


def own_invoices(conn: Connection, customer_id: str, invoice_ids: Iterable[str]) -> list[str]:
    """`invoice_ids`, each checked to be this customer's; CollectRefused names the first that is not."""
    wanted = sorted(set(invoice_ids))
    if len(wanted) > MAX_INVOICES:
        raise CollectRefused(f"at most {MAX_INVOICES} invoices per touch")
    if not wanted:
        return []
    found = set(conn.execute(select(invoices.c.invoice_id).where(
        invoices.c.customer_id == customer_id, invoices.c.invoice_id.in_(wanted))).scalars())
    for invoice_id in wanted:
        if invoice_id not in found:
            raise CollectRefused(f"invoice {invoice_id!r} is not an invoice of customer {customer_id!r}")
    return wanted


def log_touch(store: Store, actor: Actor, customer_id: str, kind: str, *, outcome: str = "", body: str = "",
              invoice_ids: Iterable[str] = (), now: datetime | None = None) -> int:
    """Record a call (with its outcome), an email sent outside the portal or a note; returns the touch id.
    Refused (CollectRefused, nothing written) for a viewer, an unknown customer or kind, a call without an
    outcome, an empty note, or an invoice of another customer."""
    kind, outcome, body = checked_touch(actor, kind, outcome, body)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        return write_touch(conn, actor, customer_id, kind, outcome, body, invoice_ids, now)


def checked_touch(actor: Actor, kind: str, outcome: str, body: str) -> tuple[str, str, str]:
    """(kind, outcome, body) as they will be stored; CollectRefused when they cannot be."""
    require_worker(actor)
    if kind not in KINDS:
        raise CollectRefused(f"kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "call" and outcome not in OUTCOMES:
        raise CollectRefused(f"call outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    if kind != "call":
        outcome = ""
    body = body.strip()
    if kind == "note" and not body:
        raise CollectRefused("a note needs some text")
    if len(body) > MAX_BODY:
        raise CollectRefused(f"the text has {len(body)} characters; at most {MAX_BODY}")
    return kind, outcome, body


def write_touch(conn: Connection, actor: Actor, customer_id: str, kind: str, outcome: str, body: str,
                invoice_ids: Iterable[str], now: datetime) -> int:
    """A checked touch (`checked_touch`) written in the caller's transaction, after the customer and its
    invoices are checked."""
    if not customer_exists(conn, customer_id):
        raise CollectRefused(f"customer {customer_id!r}: no such customer", 404)
    checked = own_invoices(conn, customer_id, invoice_ids)
    return insert_touch(conn, {"customer_id": customer_id, "kind": kind, "outcome": outcome, "body": body,
                               "collector": actor.email, "created_by": actor.email, "contact_id": "",
                               "occurred_at": now}, checked)


def customer_touches(store: Store, actor: Actor, customer_id: str, *, private_notes: bool, limit: int = 100
                     ) -> list[dict[str, Any]]:
    """The customer's touches, newest first, that `actor` may read, each with `invoices` (numbers)."""
    query = (select(touches).where(touches.c.customer_id == customer_id)
             .order_by(touches.c.occurred_at.desc(), touches.c.touch_id.desc()).limit(limit))
    if private_notes and not actor.oversees:
        query = query.where(or_(touches.c.kind != "note", touches.c.created_by == actor.email))
    with store.begin() as conn:
        rows = [r._asdict() for r in conn.execute(query)]
        ids = [r["touch_id"] for r in rows]
        numbers: dict[int, list[str]] = {}
        if ids:
            named = (select(touch_invoices.c.touch_id, invoices.c.number)
                     .select_from(touch_invoices.join(invoices, and_(
                         invoices.c.invoice_id == touch_invoices.c.invoice_id,
                         invoices.c.customer_id == customer_id)))
                     .where(touch_invoices.c.touch_id.in_(ids)).order_by(invoices.c.number))
            for touch_id, number in conn.execute(named):
                numbers.setdefault(touch_id, []).append(number)
    for row in rows:
        row["invoices"] = numbers.get(row["touch_id"], [])
        row["label"] = touch_label(row["kind"], row["outcome"])
    return rows


def touch_label(kind: str, outcome: str) -> str:
    if kind == "call":
        return f"Call: {OUTCOMES.get(outcome, outcome).lower()}"
    return {"email": "Email sent outside the portal", "note": "Note", "portal_email": "Email sent by the portal",
            "hold": "Put on hold", "hold_released": "Hold released", "answer": "Question answered",
            "promise": "Promise to pay", "promise_kept": "Promise kept", "promise_broken": "Promise broken",
            "promise_cancelled": "Promise replaced by a newer one", "reassigned": "Reassigned",
            "plan": "Payment plan", "plan_cancelled": "Payment plan cancelled"
            }.get(kind, kind.replace("_", " "))


def record_portal_email(store: Store, customer_id: str, contact_id: str, invoice_ids: Iterable[str], what: str,
                        message_id: str, now: datetime | None = None) -> int:
    """A message the portal sent outside the mail runs (a fresh link), as a touch of the customer's collector."""
    with store.begin() as conn:
        return record_portal_touch(conn, customer_id, contact_id, [i for i in invoice_ids if i], what, message_id,
                                   now or datetime.now(UTC))
