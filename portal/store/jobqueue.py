"""The refresh queue: the work that follows an event (re-render and publish one customer, send its emails),
recorded in the event's own transaction so that a crash or a frozen Lambda loses nothing (docs/refresh.md).

Guarantees:
- Durable: `enqueue_refresh` and `enqueue` take the caller's connection: the job commits with the change that
  caused it, or not at all.
- Coalesced: a customer has at most one QUEUED refresh (a partial unique index). A hundred events for one
  customer while its refresh waits add nothing; events while it runs add one more, which runs after it: one or
  two re-renders, and the last one always reads the store after the last change (an event coalesced into the
  queued refresh holds it until the event commits, so no worker claims it and renders before the change).
- One job per customer at a time, lowest id first: `claim` never hands out a job of a customer whose other job
  is running (so the payment email follows the re-render it was queued after, and two workers never publish
  the same customer at once). Claims are compare-and-set updates, so any number of workers may claim at once,
  on SQLite and on PostgreSQL.
- At least once: a claimed job holds a lease; a worker killed with -9 leaves it `running`, and once the lease
  has passed any worker claims it again. Effects are idempotent (a re-render of the same state writes nothing
  new; an email records its Message-ID before the job ends, portal/jobs/mailjobs.py).
- Failures retry with backoff (`fail`), then stay `failed` with their error for staff to see.

It also keeps each customer's page revision (`page_revisions`): a counter every change that alters the
customer's pages bumps in its transaction, which lets a nightly publish tell that the pages it built are older
than the store (portal/publish/freshness.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from portal.store.database import Store
from portal.store.tables import ID, UTCDateTime, metadata

REFRESH = "refresh"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_ATTEMPTS = 5
KEEP_DONE = timedelta(days=7)  # finished jobs are kept this long, for the record

FORCED = '{"force": true}'
_QUEUED_REFRESH = text("state = 'queued' AND kind = 'refresh'")

jobs = Table(
    "jobs", metadata,
    Column("job_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),  # refresh | payment_mail | dispute_mail | resolution_mail
    Column("customer_id", String(ID), nullable=False),
    Column("payload", Text, nullable=False, default="{}"),  # JSON: what the job needs besides the customer
    Column("state", String(10), nullable=False, default=QUEUED),
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("worker", String(100), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Index("ix_jobs_state_run_after", "state", "run_after"),
    Index("ix_jobs_customer_id_state", "customer_id", "state"),
    # At most one queued refresh per customer: what coalesces a burst of events.
    Index("uq_jobs_queued_refresh", "customer_id", unique=True, sqlite_where=_QUEUED_REFRESH,
          postgresql_where=_QUEUED_REFRESH),
)

page_revisions = Table(
    "page_revisions", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("revision", BigInteger, nullable=False, default=0),  # bumped by every change to the customer's pages
    Column("published", BigInteger, nullable=False, default=0),  # the revision the last refresh rendered
    # A refresh published this customer since the target's main manifest was last written: that manifest does
    # not know the refresh's files, so the next whole-site publish must look before it trusts it.
    Column("unmerged", Boolean, nullable=False, default=False),
)

# The emails a job has sent: a job run again (its worker died) skips them. The row is written right after the
# mail server accepted the message; only a crash between the two can send one twice (with the same Message-ID).
job_messages = Table(
    "job_messages", metadata,
    Column("job_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("recipient", String(320), primary_key=True),
    Column("message_id", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Job:
    job_id: int
    kind: str
    customer_id: str
    payload: dict[str, Any]
    attempts: int  # including this one


def _insert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(jobs)


def enqueue_refresh(conn: Connection, customer_id: str, now: datetime, *, bump: bool = True,
                    force: bool = False) -> None:
    """Queue a re-render of the customer's pages (coalesced with one already queued). `bump`: the caller changed
    what the pages show, so their revision moves on. `force`: a repair (portal/publish/freshness.py): someone else
    wrote the customer's objects, so the refresh must not trust its own manifest of them (the queued one, if any,
    becomes forced)."""
    payload = FORCED if force else "{}"
    statement = _insert(conn).values(kind=REFRESH, customer_id=customer_id, payload=payload, state=QUEUED,
                                     attempts=0, run_after=now, created_at=now, worker="", last_error="")
    # Coalescing updates the queued refresh (a no-op unless forced) rather than doing nothing: the update locks it
    # until this transaction ends, so no worker claims it and renders before this change commits. DO NOTHING takes
    # no lock on PostgreSQL, and the change would be coalesced into a refresh that never sees it.
    conn.execute(statement.on_conflict_do_update(index_elements=["customer_id"], index_where=_QUEUED_REFRESH,
                                                 set_={"payload": FORCED if force else jobs.c.payload}))
    if bump:
        bump_revision(conn, customer_id)


def enqueue(conn: Connection, kind: str, customer_id: str, payload: dict[str, Any], now: datetime) -> int:
    """Queue one job that is not coalesced (an email); returns its id."""
    return conn.execute(insert(jobs).values(
        kind=kind, customer_id=customer_id, payload=json.dumps(payload, sort_keys=True), state=QUEUED, attempts=0,
        run_after=now, created_at=now, worker="", last_error="").returning(jobs.c.job_id)).scalar_one()


def bump_revision(conn: Connection, customer_id: str) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(page_revisions).values(customer_id=customer_id, revision=1, published=0,
                                                      unmerged=False)
    conn.execute(statement.on_conflict_do_update(index_elements=["customer_id"],
                                                 set_={"revision": page_revisions.c.revision + 1}))


def revisions(conn: Connection, customer_ids: list[str] | None = None) -> dict[str, int]:
    """customer id -> page revision, for customers that ever changed (all others are at 0)."""
    query = select(page_revisions.c.customer_id, page_revisions.c.revision)
    if customer_ids is not None:
        query = query.where(page_revisions.c.customer_id.in_(customer_ids))
    return dict(conn.execute(query).all())


def record_published(conn: Connection, customer_id: str, revision: int) -> None:
    """A refresh published the customer's pages as of `revision` (or later): the main manifest lags them."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(page_revisions).values(customer_id=customer_id, revision=revision,
                                                      published=revision, unmerged=True)
    conn.execute(statement.on_conflict_do_update(index_elements=["customer_id"],
                                                 set_={"published": revision, "unmerged": True}))


def unmerged(conn: Connection) -> dict[str, int]:
    """Customers a refresh published since the main manifest was written: id -> the revision it published."""
    query = select(page_revisions.c.customer_id, page_revisions.c.published).where(page_revisions.c.unmerged)
    return dict(conn.execute(query).all())


def mark_merged(conn: Connection, seen: dict[str, int]) -> None:
    """The main manifest now knows these customers' files, as of the revision seen; a refresh since stays unmerged."""
    for customer_id, revision in seen.items():
        conn.execute(update(page_revisions).where(and_(page_revisions.c.customer_id == customer_id,
                                                       page_revisions.c.published == revision))
                     .values(unmerged=False))


def sent_recipients(conn: Connection, job_id: int) -> set[str]:
    return set(conn.execute(select(job_messages.c.recipient).where(job_messages.c.job_id == job_id)).scalars())


def record_message(conn: Connection, job_id: int, recipient: str, message_id: str, now: datetime) -> None:
    conn.execute(insert(job_messages).values(job_id=job_id, recipient=recipient, message_id=message_id,
                                             sent_at=now))


# --- the worker's side ---------------------------------------------------------------------------------------------


def _claimable(now: datetime) -> Any:
    return or_(jobs.c.state == QUEUED, and_(jobs.c.state == RUNNING, jobs.c.lease_until <= now))


def claim(store: Store, worker: str, now: datetime, lease: timedelta, job_id: int | None = None) -> Job | None:
    """Take the next due job (or job `job_id`, when it is due) for `worker`, or None when there is none.

    The next job: the lowest id among due jobs whose customer has no other job running under a live lease.
    A compare-and-set update makes it this worker's; losing a race just means trying the next one."""
    for _ in range(20):
        try:
            return _claim_once(store, worker, now, lease, job_id)
        except _Raced:
            continue
    return None


class _Raced(Exception):
    """Another worker took a job of the same customer at the same moment: undo the claim and look again."""


def _claim_once(store: Store, worker: str, now: datetime, lease: timedelta, job_id: int | None) -> Job | None:
    running = jobs.alias("running")
    busy = exists().where(and_(running.c.customer_id == jobs.c.customer_id, running.c.job_id != jobs.c.job_id,
                               running.c.state == RUNNING, running.c.lease_until > now))
    query = (select(jobs.c.job_id, jobs.c.kind, jobs.c.customer_id, jobs.c.payload, jobs.c.attempts)
             .where(_claimable(now), jobs.c.run_after <= now, ~busy).order_by(jobs.c.job_id).limit(1))
    if job_id is not None:
        query = query.where(jobs.c.job_id == job_id)
    with store.begin() as conn:
        row = conn.execute(query).first()
        if row is None:
            return None
        taken = conn.execute(update(jobs).where(jobs.c.job_id == row.job_id, _claimable(now))
                             .values(state=RUNNING, worker=worker[:100], lease_until=now + lease,
                                     attempts=jobs.c.attempts + 1)).rowcount
        if taken != 1 or _another_running(conn, row.customer_id, row.job_id, now):
            raise _Raced  # rolls the claim back
        return Job(row.job_id, row.kind, row.customer_id, json.loads(row.payload), row.attempts + 1)


def _another_running(conn: Connection, customer_id: str, job_id: int, now: datetime) -> bool:
    return conn.execute(select(func.count()).select_from(jobs).where(
        jobs.c.customer_id == customer_id, jobs.c.job_id != job_id, jobs.c.state == RUNNING,
        jobs.c.lease_until > now)).scalar_one() > 0


def finish(store: Store, job: Job, now: datetime) -> None:
    with store.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.job_id == job.job_id)
                     .values(state=DONE, finished_at=now, lease_until=None, last_error=""))


def fail(store: Store, job: Job, error: str, now: datetime, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """Record a failed run: queued again after a backoff (2, 4, 8 ... s, at most 5 minutes), or `failed` for good
    after `max_attempts`. Returns True when it will be retried."""
    retry = job.attempts < max_attempts
    values: dict[str, Any] = {"last_error": error[:2000], "lease_until": None}
    if retry:
        values.update(state=QUEUED, run_after=now + timedelta(seconds=min(2 ** job.attempts, 300)))
    else:
        values.update(state=FAILED, finished_at=now)
    with store.begin() as conn:
        if retry and job.kind == REFRESH and conn.execute(select(func.count()).select_from(jobs).where(
                jobs.c.customer_id == job.customer_id, jobs.c.kind == REFRESH, jobs.c.state == QUEUED)).scalar_one():
            # A refresh queued again while this one ran covers its work (and only one may be queued).
            values.update(state=DONE, finished_at=now, last_error=f"superseded after: {error[:1900]}")
            values.pop("run_after")
        conn.execute(update(jobs).where(jobs.c.job_id == job.job_id).values(**values))
    return retry


def due_ids(conn: Connection, now: datetime, limit: int = 1000) -> list[int]:
    """Ids of jobs that could run now (queued and due, or running with an expired lease), oldest first."""
    return list(conn.execute(select(jobs.c.job_id).where(_claimable(now), jobs.c.run_after <= now)
                             .order_by(jobs.c.job_id).limit(limit)).scalars())


def counts(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all())


def prune(conn: Connection, now: datetime) -> int:
    return conn.execute(delete(jobs).where(jobs.c.state == DONE, jobs.c.finished_at < now - KEEP_DONE)).rowcount
