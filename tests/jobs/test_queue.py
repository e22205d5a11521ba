"""portal/store/jobqueue.py on SQLite and PostgreSQL: jobs recorded with their event, coalesced per customer, one
job per customer at a time, claimed again once a dead worker's lease has passed, retried with backoff, then
`failed`; several workers claiming at once never run a job twice or two jobs of one customer together."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.store import jobqueue

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def states(store):
    with store.begin() as conn:
        return [(r.kind, r.customer_id, r.state) for r in conn.execute(
            select(jobqueue.jobs).order_by(jobqueue.jobs.c.job_id))]


def test_a_burst_for_one_customer_queues_one_refresh_and_counts_every_change(store):
    for _ in range(100):
        with store.begin() as conn:
            jobqueue.enqueue_refresh(conn, "C1", NOW)
    assert states(store) == [("refresh", "C1", "queued")]
    with store.begin() as conn:
        assert jobqueue.revisions(conn) == {"C1": 100}


def test_a_change_while_the_refresh_runs_queues_exactly_one_more(store):
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", NOW)
    job = jobqueue.claim(store, "w1", NOW, LEASE)
    for _ in range(5):
        with store.begin() as conn:
            jobqueue.enqueue_refresh(conn, "C1", NOW)
    assert states(store) == [("refresh", "C1", "running"), ("refresh", "C1", "queued")]
    assert jobqueue.claim(store, "w2", NOW, LEASE) is None  # C1 is busy: its second refresh waits
    jobqueue.finish(store, job, NOW)
    second = jobqueue.claim(store, "w2", NOW, LEASE)
    assert second is not None and second.job_id != job.job_id and second.customer_id == "C1"


def test_one_customers_jobs_run_oldest_first_and_one_at_a_time_while_others_go_on(store):
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", NOW)
        jobqueue.enqueue(conn, "payment_mail", "C1", {"n": 1}, NOW)
        jobqueue.enqueue_refresh(conn, "C2", NOW)
    first = jobqueue.claim(store, "w1", NOW, LEASE)
    other = jobqueue.claim(store, "w2", NOW, LEASE)
    assert (first.kind, first.customer_id) == ("refresh", "C1")
    assert (other.kind, other.customer_id) == ("refresh", "C2")  # not C1's email: its refresh is still running
    assert jobqueue.claim(store, "w3", NOW, LEASE) is None
    jobqueue.finish(store, first, NOW)
    mail = jobqueue.claim(store, "w3", NOW, LEASE)
    assert (mail.kind, mail.payload) == ("payment_mail", {"n": 1})


def test_a_job_whose_worker_died_is_claimed_again_once_its_lease_has_passed(store):
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", NOW)
    dead = jobqueue.claim(store, "killed", NOW, LEASE)  # never finished: the worker got kill -9
    assert jobqueue.claim(store, "w2", NOW + LEASE - timedelta(seconds=1), LEASE) is None
    again = jobqueue.claim(store, "w2", NOW + LEASE + timedelta(seconds=1), LEASE)
    assert again is not None and again.job_id == dead.job_id and again.attempts == 2


def test_a_failing_job_is_retried_with_backoff_then_stays_failed(store):
    with store.begin() as conn:
        jobqueue.enqueue(conn, "payment_mail", "C1", {}, NOW)
    moment = NOW
    for run in range(1, 4):
        job = jobqueue.claim(store, "w", moment, LEASE)
        assert job is not None and job.attempts == run
        retried = jobqueue.fail(store, job, "SMTP down", moment, max_attempts=3)
        assert retried == (run < 3)
        assert jobqueue.claim(store, "w", moment, LEASE) is None  # not before its backoff
        moment += timedelta(seconds=2 ** run + 1)
    assert states(store) == [("payment_mail", "C1", "failed")]
    with store.begin() as conn:
        row = conn.execute(select(jobqueue.jobs)).one()
    assert row.last_error == "SMTP down" and row.attempts == 3


def test_a_failed_refresh_with_a_newer_one_queued_is_superseded_not_duplicated(store):
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", NOW)
    job = jobqueue.claim(store, "w", NOW, LEASE)
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C1", NOW)  # a change while it ran
    assert jobqueue.fail(store, job, "target down", NOW) is True
    assert states(store) == [("refresh", "C1", "done"), ("refresh", "C1", "queued")]
    with store.begin() as conn:
        assert conn.execute(select(jobqueue.jobs.c.last_error).order_by(jobqueue.jobs.c.job_id)).first()[0] \
            .startswith("superseded")


def test_workers_claiming_at_once_run_each_job_once_and_never_two_of_one_customer_together(store):
    customers = [f"C{n}" for n in range(8)]
    with store.begin() as conn:
        for n in range(40):
            jobqueue.enqueue(conn, "payment_mail", customers[n % len(customers)], {"n": n}, datetime.now(UTC))
    runs: list[tuple[int, str, float, float]] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while True:
            job = jobqueue.claim(store, name, datetime.now(UTC), LEASE)
            if job is None:
                with store.begin() as conn:
                    if not jobqueue.due_ids(conn, datetime.now(UTC)):
                        return
                continue
            started = time.monotonic()
            time.sleep(0.005)
            with lock:
                runs.append((job.job_id, job.customer_id, started, time.monotonic()))
            jobqueue.finish(store, job, datetime.now(UTC))

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r[0] for r in runs) == list(range(min(r[0] for r in runs), min(r[0] for r in runs) + 40))
    for customer in customers:
        spans = sorted((start, end) for _, c, start, end in runs if c == customer)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), customer  # never overlapping
        ids = [job_id for job_id, c, _, _ in sorted(runs, key=lambda r: r[2]) if c == customer]
        assert ids == sorted(ids), customer  # oldest first
