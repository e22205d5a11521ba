"""The receipt rollup equals a full recomputation from the events, whatever the order events commit in."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select

from portal.staff import receiptrollup
from portal.staff.receiptrollup import GAP_TTL, rebuild, refresh
from portal.store.staff import receipt_rollup_state
from portal.store.tables import events

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KINDS = ["email_sent", "link_opened", "page_viewed", "document_viewed", "payment_succeeded", "question_asked"]


def random_events(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        rows.append({"kind": rng.choice(KINDS), "customer_id": f"C{rng.randrange(5)}",
                     "invoice_id": rng.choice(["", "I1", "I2", "I3", "I4"]),
                     "occurred_at": T0 + timedelta(minutes=rng.randrange(100_000))})
    return rows


def add(store, rows: list[dict]) -> None:
    if not rows:
        return
    with store.begin() as conn:
        conn.execute(insert(events), rows)


def assert_exact(store) -> None:
    with store.begin() as conn:
        assert receiptrollup.current(conn) == receiptrollup.recompute(conn)


def test_refresh_equals_recomputation_after_random_inserts(store):
    rng = random.Random(5)
    assert refresh(store).new_events == 0
    assert_exact(store)
    for size in (50, 1, 0, 300, 7):
        add(store, random_events(rng, size))
        result = refresh(store)
        assert result.new_events == size
        assert_exact(store)
    # The rollup has the four receipt kinds counted separately, and the times of the first of each.
    with store.begin() as conn:
        rows = receiptrollup.current(conn)
    assert sum(r["page_viewed"] for r in rows.values()) == store.count_events(kind="page_viewed")
    assert sum(r["emails_sent"] for r in rows.values()) == store.count_events(kind="email_sent")
    assert all(r["last_event_at"].tzinfo is UTC for r in rows.values())
    rebuild(store)
    assert_exact(store)


def test_a_second_refresh_with_nothing_new_writes_nothing(store):
    add(store, random_events(random.Random(1), 20))
    refresh(store)
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement.lstrip().split()[0].upper())

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        result = refresh(store)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert result.new_events == 0 and result.keys == 0
    assert set(statements) == {"SELECT"} and len(statements) == 2


def test_refresh_later_events_of_a_folded_key(store):
    store.record_event("email_sent", "C1", invoice_id="I1", occurred_at=T0)
    refresh(store)
    store.record_event("page_viewed", "C1", invoice_id="I1", occurred_at=T0 + timedelta(days=1))
    store.record_event("page_viewed", "C1", invoice_id="I1", occurred_at=T0 + timedelta(hours=1))
    refresh(store)
    with store.begin() as conn:
        row = receiptrollup.current(conn)[("C1", "I1")]
    assert (row["emails_sent"], row["page_viewed"]) == (1, 2)
    assert row["first_viewed_at"] == T0 + timedelta(hours=1) and row["last_viewed_at"] == T0 + timedelta(days=1)
    assert row["first_sent_at"] == T0 and row["last_event_at"] == T0 + timedelta(days=1)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite serialises writers: ids commit in order
def test_out_of_order_commit_is_not_skipped(store, db_url):
    """PostgreSQL: a transaction takes an event id, another commits a higher id, a refresh runs, and only then
    does the first commit. A plain "id > watermark" fold would lose the first event for good."""
    store.record_event("email_sent", "C1", invoice_id="I1", occurred_at=T0)
    refresh(store)
    slow = store.engine.connect()
    slow_tx = slow.begin()
    slow.execute(insert(events).values(kind="page_viewed", customer_id="C1", invoice_id="I1",
                                       occurred_at=T0 + timedelta(hours=1)))  # takes id 2, not committed
    store.record_event("page_viewed", "C2", invoice_id="I2", occurred_at=T0 + timedelta(hours=2))  # id 3
    result = refresh(store)
    assert result.watermark == 3 and result.gaps == 1
    with store.begin() as conn:
        assert receiptrollup.current(conn)[("C1", "I1")]["page_viewed"] == 0  # not visible yet
    slow_tx.commit()
    slow.close()
    refresh(store)
    with store.begin() as conn:
        assert receiptrollup.current(conn)[("C1", "I1")]["page_viewed"] == 1
    assert_exact(store)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite reuses a rolled-back rowid: no gap
def test_rolled_back_ids_are_forgotten_after_the_ttl(store, db_url):
    store.record_event("email_sent", "C1", invoice_id="I1", occurred_at=T0)
    with store.engine.connect() as conn:  # takes an id, then rolls back: a gap for ever on PostgreSQL
        tx = conn.begin()
        conn.execute(insert(events).values(kind="page_viewed", customer_id="C1", occurred_at=T0))
        tx.rollback()
    store.record_event("email_sent", "C1", invoice_id="I2", occurred_at=T0)
    now = datetime.now(UTC)
    first = refresh(store, now=now)
    assert first.gaps == 1
    assert refresh(store, now=now + timedelta(minutes=5)).gaps == 1
    assert refresh(store, now=now + GAP_TTL + timedelta(minutes=1)).gaps == 0
    with store.begin() as conn:
        assert conn.execute(select(receipt_rollup_state.c.gaps)).scalar() == "[]"
    assert_exact(store)


def test_concurrent_refreshes_and_inserts(store):
    """Writers and several refreshers at once; after a final refresh the rollup is exact."""
    rng = random.Random(9)
    batches = [random_events(rng, 20) for _ in range(20)]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in batches:
                add(store, batch)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def refresher() -> None:
        try:
            for _ in range(10):
                refresh(store)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=refresher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    refresh(store)
    assert_exact(store)
    assert store.count_events() == 400
