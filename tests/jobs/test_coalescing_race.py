"""A change coalesced into a queued refresh is never lost to a worker that claims that refresh before the change
commits (docs/refresh.md: "the last one always reads the store after the last change"), on SQLite and PostgreSQL.

The race: an event's transaction finds its customer's refresh already queued and adds nothing; a worker claims
that refresh and renders before the event commits. The refresh then shows the store without the change, and no
other refresh is queued for it. Coalescing must hold the queued refresh until the event's transaction ends, so
that the claim waits for it (or, once claimed, the event queues a new one)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.store import jobqueue

LEASE = timedelta(seconds=60)


def test_a_refresh_claimed_while_a_change_coalesces_into_it_waits_for_that_change(store):
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", datetime.now(UTC))  # the customer's refresh, waiting for a worker
    claimed: dict[str, object] = {}

    def worker() -> None:
        claimed["asked"] = time.monotonic()
        claimed["job"] = jobqueue.claim(store, "w1", datetime.now(UTC), LEASE)
        claimed["at"] = time.monotonic()
        with store.begin() as conn:  # what the refresh reads first (portal/build/customer.py)
            claimed["revision"] = jobqueue.revisions(conn, ["C1"]).get("C1", 0)

    with store.begin() as conn:  # the event's transaction: its change, its (coalesced) refresh
        jobqueue.enqueue_refresh(conn, "C1", datetime.now(UTC))
        thread = threading.Thread(target=worker)
        thread.start()
        time.sleep(0.5)  # the worker claims meanwhile (or waits for this transaction)
        committed = time.monotonic()
    thread.join(30)
    assert claimed["job"] is not None and claimed["asked"] < committed
    with store.begin() as conn:
        queued = conn.execute(select(jobqueue.jobs.c.job_id).where(jobqueue.jobs.c.state == jobqueue.QUEUED)).all()
    # Either the claimed refresh read the store after the change, or another refresh is queued to do so.
    assert claimed["revision"] == 2 or queued, "the change's refresh was lost"


def test_a_change_coalesced_into_a_forced_refresh_keeps_it_forced(store):
    now = datetime.now(UTC)
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", now, force=True)  # a repair: trust no manifest
        jobqueue.enqueue_refresh(conn, "C1", now)  # then a payment
        jobqueue.enqueue_refresh(conn, "C2", now)
        jobqueue.enqueue_refresh(conn, "C2", now, force=True)
    jobs = [jobqueue.claim(store, "w", now, LEASE) for _ in range(2)]
    assert {(j.customer_id, j.payload.get("force")) for j in jobs} == {("C1", True), ("C2", True)}
    with store.begin() as conn:
        assert jobqueue.revisions(conn) == {"C1": 2, "C2": 2}
