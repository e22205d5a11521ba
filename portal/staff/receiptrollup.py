"""Receipt rollup: per (customer_id, invoice_id), the event counts and times the receipts view shows.

The receipts view and the KPIs read this table instead of grouping 1,000,000 events on every request.
`refresh(store)` folds in what was recorded since the last refresh; it is called at the start of every
staff request that shows receipts or KPIs, so it must be cheap when nothing (or little) is new.

Exactness. A key's row is never incremented: it is recomputed from the events table (a GROUP BY on the
key, served by the events (customer_id, invoice_id, kind) index) and upserted. Recomputing is idempotent,
so folding a key twice is harmless, and the only question is which keys to fold:

- every key of an event whose id is above the watermark (the highest event id seen by the last refresh);
- every key of an event that has appeared inside a *gap*: on PostgreSQL an event id is taken from the
  sequence at INSERT, but transactions commit in any order, so when a refresh sees ids 7 and 9, id 8 may
  be a transaction still in flight (or one that rolled back). Each refresh records the missing id ranges
  below its new watermark and, on every later refresh, folds the keys of events that have since appeared
  in them (a primary-key range probe). A range is forgotten after `GAP_TTL` (no webhook transaction lives
  that long; a rolled-back id never appears). SQLite serialises writers, so its ids commit in order and
  its gap list stays empty, but the code is the same.

Concurrency. The state row (`receipt_rollup_state`, id 1) is UPDATEd first thing in the refresh's
transaction: on PostgreSQL that is a row lock, so concurrent refreshes run one after the other (and the
second, in READ COMMITTED, sees what the first wrote); on SQLite the first write takes the database's write
lock before anything is read, so no refresh works from a stale snapshot.

The tables are the store's (portal/store/staff.py), with the receipt lines' (which a refresh keeps in step: the
tails of the lines of every key it recomputed, in the same transaction, portal/staff/receiptlines.py).

Events are never deleted by the portal. Should that change, `rebuild(store)` recomputes everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from portal.staff import receiptlines
from portal.staff.receiptlock import STATE_ID
from portal.store.database import Store
from portal.store.staff import receipt_rollup, receipt_rollup_state
from portal.store.tables import events

RECEIPT_KINDS = ("email_sent", "link_opened", "page_viewed", "document_viewed")
GAP_TTL = timedelta(days=1)
MAX_GAPS = 10_000  # ranges kept; rollbacks are rare, so this is never reached in practice


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did (for the benchmark and logs)."""

    full: bool  # a first (or forced) build of every key
    new_events: int  # events above the old watermark
    keys: int | None  # rows upserted (None when the driver does not say)
    watermark: int
    gaps: int  # missing id ranges still watched


def _aggregates() -> list[Any]:
    """The rollup's columns, computed from `events` grouped by (customer_id, invoice_id)."""
    def count(kind: str) -> Any:
        return func.coalesce(func.sum(case((events.c.kind == kind, 1), else_=0)), 0)

    def first(kind: str) -> Any:
        return func.min(case((events.c.kind == kind, events.c.occurred_at)))

    return [
        events.c.customer_id, events.c.invoice_id,
        count("email_sent").label("emails_sent"), count("link_opened").label("link_opened"),
        count("page_viewed").label("page_viewed"), count("document_viewed").label("documents_viewed"),
        first("email_sent").label("first_sent_at"), first("link_opened").label("first_opened_at"),
        first("page_viewed").label("first_viewed_at"),
        func.max(case((events.c.kind == "page_viewed", events.c.occurred_at))).label("last_viewed_at"),
        func.max(events.c.occurred_at).label("last_event_at"),
    ]


_VALUE_COLUMNS = ["emails_sent", "link_opened", "page_viewed", "documents_viewed", "first_sent_at",
                  "first_opened_at", "first_viewed_at", "last_viewed_at", "last_event_at"]


def _upsert(conn: Connection, where: Any | None) -> int | None:
    """Recompute the rows of every key of the events matching `where` (all keys when None); one statement."""
    query = select(*_aggregates()).group_by(events.c.customer_id, events.c.invoice_id)
    if where is not None:
        touched = select(events.c.customer_id, events.c.invoice_id).where(where)
        query = query.where(tuple_(events.c.customer_id, events.c.invoice_id).in_(touched))
    else:
        query = query.where(literal(True))  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    dialect = conn.dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    names = ["customer_id", "invoice_id", *_VALUE_COLUMNS]
    stmt = make(receipt_rollup).from_select(names, query)
    stmt = stmt.on_conflict_do_update(index_elements=["customer_id", "invoice_id"],
                                      set_={c: stmt.excluded[c] for c in _VALUE_COLUMNS})
    count = conn.execute(stmt).rowcount
    return count if count is not None and count >= 0 else None


def _lock_state(conn: Connection, now: datetime) -> tuple[int, list[list[Any]]]:
    """Take the refresh lock (the state row's UPDATE) and return (watermark, gaps)."""
    touched = conn.execute(update(receipt_rollup_state).where(receipt_rollup_state.c.id == STATE_ID)
                           .values(refreshed_at=now)).rowcount
    if not touched:
        # A database migrated without the seed row (or emptied by hand): create it; a concurrent creator
        # makes this fail on the primary key, and the caller's retry then finds the row.
        conn.execute(insert(receipt_rollup_state).values(id=STATE_ID, last_event_id=0, gaps="[]",
                                                         refreshed_at=now))
    row = conn.execute(select(receipt_rollup_state.c.last_event_id, receipt_rollup_state.c.gaps)
                       .where(receipt_rollup_state.c.id == STATE_ID)).one()
    return int(row.last_event_id), json.loads(row.gaps or "[]")


def _scan(conn: Connection, watermark: int) -> tuple[int, int, list[tuple[int, int]]]:
    """In ONE statement (one snapshot): how many events are above the watermark, the highest id, and the id
    ranges missing between the watermark and that id (in flight or rolled back)."""
    ordered = select(events.c.event_id.label("id"),
                     func.lag(events.c.event_id).over(order_by=events.c.event_id).label("prev"),
                     func.max(events.c.event_id).over().label("top"),
                     func.count().over().label("n")).where(events.c.event_id > watermark).subquery()
    rows = conn.execute(select(ordered).where(or_(ordered.c.prev.is_(None), ordered.c.id - ordered.c.prev > 1))
                        ).all()
    if not rows:
        return 0, watermark, []
    gaps = []
    for r in rows:
        lo = (watermark if r.prev is None else int(r.prev)) + 1
        if int(r.id) > lo:
            gaps.append((lo, int(r.id) - 1))
    return int(rows[0].n), int(rows[0].top), gaps


def _gap_filter(gaps: list[list[Any]]) -> Any:
    return or_(false(), *[events.c.event_id.between(int(lo), int(hi)) for lo, hi, _ in gaps])


def _refresh_once(store: Store, full: bool, now: datetime) -> RefreshResult:
    with store.begin() as conn:
        watermark, gaps = _lock_state(conn, now)
        if full:
            watermark, gaps = 0, []
        new, top, new_gaps = _scan(conn, watermark)
        # Forget old gaps (their transactions are long over: what is missing rolled back).
        gaps = [g for g in gaps if now - datetime.fromisoformat(g[2]) < GAP_TTL]
        # Ranges that have an event by now: fold their keys this time. They may still hide in-flight ids,
        # so keep watching them until they expire (folding again is harmless).
        # The receipt lines' tails follow the rows recomputed here (portal/staff/receiptlines.py).
        if watermark == 0 and not gaps:
            keys: int | None = _upsert(conn, None) if new else 0
            if new:
                receiptlines.refresh_tails(conn, None)
        elif new or gaps:
            above = events.c.event_id > watermark
            touched = or_(above, _gap_filter(gaps)) if gaps else above
            keys = _upsert(conn, touched)
            receiptlines.refresh_tails(conn, touched)
        else:
            keys = 0
        stamp = now.isoformat()
        gaps = (gaps + [[lo, hi, stamp] for lo, hi in new_gaps])[-MAX_GAPS:]
        conn.execute(update(receipt_rollup_state).where(receipt_rollup_state.c.id == STATE_ID)
                     .values(last_event_id=max(top, watermark), gaps=json.dumps(gaps)))
    return RefreshResult(full or watermark == 0, new, keys, max(top, watermark), len(gaps))


def refresh(store: Store, *, now: datetime | None = None) -> RefreshResult:
    """Fold every event recorded since the last refresh into the rollup (exactly: see the module docstring).

    Cheap when nothing is new: one unlocked read of the state and of max(event_id), and no write."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        state = conn.execute(select(receipt_rollup_state.c.last_event_id, receipt_rollup_state.c.gaps)
                             .where(receipt_rollup_state.c.id == STATE_ID)).first()
        top = conn.execute(select(func.max(events.c.event_id))).scalar() or 0
    if state is not None and int(state.last_event_id) >= top and state.gaps in ("", "[]"):
        return RefreshResult(False, 0, 0, int(state.last_event_id), 0)
    return _retrying(store, False, now)


def rebuild(store: Store, *, now: datetime | None = None) -> RefreshResult:
    """Recompute every key from scratch (only needed if events were ever deleted or edited by hand)."""
    return _retrying(store, True, now or datetime.now(UTC))


def _retrying(store: Store, full: bool, now: datetime) -> RefreshResult:
    from portal.store.database import StoreUnavailable

    try:
        return _refresh_once(store, full, now)
    except StoreUnavailable:
        # The only expected failure: two first-ever refreshes both inserting the state row. Once more.
        return _refresh_once(store, full, now)


def recompute(conn: Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """The rollup as a full GROUP BY of the events would give it (tests compare `refresh` against this)."""
    rows = conn.execute(select(*_aggregates()).group_by(events.c.customer_id, events.c.invoice_id)).all()
    return {(r.customer_id, r.invoice_id): {c: getattr(r, c) for c in _VALUE_COLUMNS} for r in rows}


def current(conn: Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """The rollup table as stored."""
    rows = conn.execute(select(receipt_rollup)).all()
    return {(r.customer_id, r.invoice_id): {c: getattr(r, c) for c in _VALUE_COLUMNS} for r in rows}
