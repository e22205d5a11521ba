"""The two facts the worklist reads, kept by triggers (migration 0013_worklist_facts) on SQLite and PostgreSQL:
`invoice_views` (the invoices a person viewed: the worklist's "not viewed by a person") and `last_staff_touches`
(each customer's latest touch by staff: what marks an item done). Each must equal what the source table says,
whichever way the rows arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from portal.collect.worklist import STAFF_TOUCHES
from portal.store.collect import last_staff_touches, touches
from portal.store.tables import events, invoice_views

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _touch(customer_id: str, kind: str, minutes: int) -> dict:
    return {"customer_id": customer_id, "kind": kind, "outcome": "", "body": "", "collector": "", "created_by": "",
            "contact_id": "", "occurred_at": T0 + timedelta(minutes=minutes)}


def test_the_latest_staff_touch_follows_the_touches_whatever_their_order_and_ignores_the_portals(store):
    rows = [_touch("C1", "call", 30), _touch("C1", "note", 10),  # an older touch logged later changes nothing
            _touch("C1", "portal_email", 90), _touch("C1", "hold", 95),  # neither is a staff touch
            _touch("C2", "portal_email", 5), _touch("C3", "promise", 1), _touch("C3", "answer", 2),
            _touch("C4", "email", 7)]
    with store.begin() as conn:
        for row in rows:
            conn.execute(insert(touches).values(**row))
        kept = dict(conn.execute(select(last_staff_touches.c.customer_id, last_staff_touches.c.touched_at)).all())
        direct = dict(conn.execute(
            select(touches.c.customer_id, func.max(touches.c.occurred_at))
            .where(touches.c.kind.in_(STAFF_TOUCHES))
            .group_by(touches.c.customer_id)).all())
    assert {k: v.replace(tzinfo=UTC) if v.tzinfo is None else v for k, v in direct.items()} == kept
    assert kept == {"C1": T0 + timedelta(minutes=30), "C3": T0 + timedelta(minutes=2),
                    "C4": T0 + timedelta(minutes=7)}


def test_an_invoice_is_viewed_from_its_first_page_view_and_nothing_else_counts(store):
    def event(kind: str, invoice_id: str, minutes: int) -> dict:
        return {"kind": kind, "customer_id": "C1", "invoice_id": invoice_id, "contact_id": "", "document_id": "",
                "ip": "", "user_agent": "", "detail": "", "occurred_at": T0 + timedelta(minutes=minutes)}

    with store.begin() as conn:
        conn.execute(insert(events), [event("page_viewed", "I-1", 5), event("page_viewed", "I-1", 1),
                                      event("link_opened", "I-2", 1), event("email_sent", "I-3", 1),
                                      event("document_viewed", "I-4", 1), event("page_viewed", "", 1)])
        viewed = dict(conn.execute(select(invoice_views.c.invoice_id, invoice_views.c.first_viewed_at)).all())
    assert viewed == {"I-1": T0 + timedelta(minutes=5)}  # the first recorded; a later row does not move it
