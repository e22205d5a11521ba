"""Holds: a customer nobody chases for a while (a negotiation, a bankruptcy filing, a key-account agreement).

While a hold lasts, `portal remind` sends the customer nothing (portal/mail/reminders.py reads
portal.store.collect.held_customers) and every staff list shows it. A hold has a reason and a last day; it ends
after that day by itself, or earlier when released. A customer has at most one current hold: placing a new one
releases the old one. Placing and releasing are kept on the customer's timeline as touches (kinds `hold`,
`hold_released`), which the activity figures do not count as contacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from portal.collect.access import Actor, CollectRefused, require_worker
from portal.collect.touches import customer_exists
from portal.store.collect import holds, insert_touch
from portal.store.database import Store

MAX_DAYS = 366
MAX_REASON = 500


def _current(conn: Connection, customer_ids: Iterable[str], today: date) -> dict[str, dict[str, Any]]:
    query = select(holds).where(holds.c.customer_id.in_(list(customer_ids)), holds.c.released_at.is_(None),
                                holds.c.until >= today)
    return {r.customer_id: r._asdict() for r in conn.execute(query)}


def current_holds(store: Store, customer_ids: Iterable[str], today: date | None = None) -> dict[str, dict[str, Any]]:
    """customer id -> its current hold (keys: reason, until, placed_by, placed_at), for those on hold today."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    with store.begin() as conn:
        return _current(conn, ids, today or datetime.now(UTC).date())


def place_hold(store: Store, actor: Actor, customer_id: str, reason: str, until: date,
               now: datetime | None = None) -> int:
    """Put the customer on hold until `until` (inclusive); returns the hold id. Refused for a viewer, an
    unknown customer, no reason, or a last day in the past or more than MAX_DAYS ahead."""
    require_worker(actor)
    now = now or datetime.now(UTC)
    today = now.date()
    reason = reason.strip()
    if not reason:
        raise CollectRefused("say why the customer is on hold: the whole team reads it")
    if len(reason) > MAX_REASON:
        raise CollectRefused(f"the reason has {len(reason)} characters; at most {MAX_REASON}")
    if until < today:
        raise CollectRefused(f"the hold's last day ({until.isoformat()}) has passed")
    if until > today + timedelta(days=MAX_DAYS):
        raise CollectRefused(f"a hold lasts at most {MAX_DAYS} days; set a review date instead of {until.isoformat()}")
    with store.begin() as conn:
        if not customer_exists(conn, customer_id):
            raise CollectRefused(f"customer {customer_id!r}: no such customer", 404)
        _release(conn, customer_id, actor, now)
        hold_id = conn.execute(insert(holds).values(
            customer_id=customer_id, reason=reason, until=until, placed_by=actor.email, placed_at=now,
            released_by="", released_at=None).returning(holds.c.hold_id)).scalar_one()
        insert_touch(conn, {"customer_id": customer_id, "kind": "hold", "outcome": "",
                            "body": f"until {until.isoformat()}: {reason}", "collector": actor.email,
                            "created_by": actor.email, "contact_id": "", "occurred_at": now})
        return int(hold_id)


def release_hold(store: Store, actor: Actor, customer_id: str, now: datetime | None = None) -> bool:
    """End the customer's current hold now; False when there was none (nothing written)."""
    require_worker(actor)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        if not _release(conn, customer_id, actor, now):
            return False
        insert_touch(conn, {"customer_id": customer_id, "kind": "hold_released", "outcome": "", "body": "",
                            "collector": actor.email, "created_by": actor.email, "contact_id": "",
                            "occurred_at": now})
        return True


def _release(conn: Connection, customer_id: str, actor: Actor, now: datetime) -> bool:
    # FOR UPDATE: two collectors releasing at once end one hold, and log it once.
    current = conn.execute(select(holds.c.hold_id).where(
        holds.c.customer_id == customer_id, holds.c.released_at.is_(None), holds.c.until >= now.date())
        .with_for_update()).scalars().all()
    if not current:
        return False
    conn.execute(update(holds).where(holds.c.hold_id.in_(current)).values(released_by=actor.email, released_at=now))
    return True
