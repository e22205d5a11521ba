"""Running the queued jobs (portal/store/jobqueue.py): `Worker` claims and runs them one by one, `ThreadRunner` does
it in a background thread of the webhook process (job_runner = "thread": one machine, `portal serve`).

`portal worker` (long-running; several may run at once, on one machine or many) and the worker Lambda
(infra/worker_handler.py) use `Worker.drain` directly. Whatever runs it, a job is claimed under a lease, run, and
marked done; a failure is retried with backoff and logged, and after `job_attempts` runs the job stays `failed`,
logged at ERROR (the line the deployment's alarm watches). A worker killed mid-job loses nothing: its lease ends
and the job runs again (docs/refresh.md says why every job may safely run twice).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from portal.core.config import Settings
from portal.jobs.mailjobs import MESSAGES, send_once
from portal.jobs.refresh import Refresher
from portal.mail.transport import Transport, transport_from_url
from portal.store import jobqueue
from portal.store.database import Store
from portal.store.jobqueue import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    job: Job
    ok: bool
    error: str = ""


class Worker:
    """Claims and runs jobs against one store. Keeps a page renderer, a target and a mail transport for its life."""

    def __init__(self, settings: Settings, store: Store, *, name: str = "", transport: Transport | None = None):
        self.settings, self.store = settings, store
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._transport = transport
        self._refresher: Refresher | None = None

    @property
    def refresher(self) -> Refresher:
        if self._refresher is None:  # compiling the templates waits for the first refresh
            self._refresher = Refresher(self.settings)
        return self._refresher

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = transport_from_url(self.settings.mail_url)
        return self._transport

    def run_next(self) -> Outcome | None:
        """Claim the next due job and run it; None when nothing is due."""
        lease = timedelta(seconds=self.settings.job_lease_seconds)
        job = jobqueue.claim(self.store, f"{self.name}:{threading.get_ident()}", _now(), lease)
        if job is None:
            return None
        try:
            self._run(job)
        except Exception as exc:  # noqa: BLE001 - any failure of a job is recorded on it, never kills the worker
            error = f"{exc.__class__.__name__}: {exc}"
            retried = jobqueue.fail(self.store, job, error, _now(), self.settings.job_attempts)
            if retried:
                log.warning("job %d (%s, customer %s) failed, run %d; retried later: %s", job.job_id, job.kind,
                            job.customer_id, job.attempts, error)
            else:
                log.error("job %d (%s, customer %s) failed for good after %d runs: %s", job.job_id, job.kind,
                          job.customer_id, job.attempts, error)
            return Outcome(job, False, error)
        jobqueue.finish(self.store, job, _now())
        return Outcome(job, True)

    def _run(self, job: Job) -> None:
        if job.kind == jobqueue.REFRESH:
            self.refresher.refresh(self.store, job.customer_id, force=bool(job.payload.get("force")))
        elif job.kind in MESSAGES:
            messages = MESSAGES[job.kind](self.settings, self.store, job)
            send_once(self.settings, self.store, self.transport, job, messages)
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")

    def drain(self, *, deadline: float | None = None, stop: Callable[[], bool] | None = None) -> list[Outcome]:
        """Run due jobs until none is left, `deadline` (time.monotonic()) has passed or `stop()` says so."""
        outcomes = []
        while (deadline is None or time.monotonic() < deadline) and not (stop and stop()):
            outcome = self.run_next()
            if outcome is None:
                break
            outcomes.append(outcome)
        return outcomes

    def run_forever(self, poll: float, stop: Callable[[], bool]) -> None:
        """`portal worker`: drain, then look again every `poll` seconds (jobs recorded by other processes, retries
        coming due), until `stop()`. Finished jobs older than a week are pruned now and then."""
        pruned = 0.0
        while not stop():
            self.drain(stop=stop)
            if time.monotonic() - pruned > 3600:
                with self.store.begin() as conn:
                    jobqueue.prune(conn, _now())
                pruned = time.monotonic()
            deadline = time.monotonic() + poll
            while not stop() and time.monotonic() < deadline:
                time.sleep(min(0.05, poll))


class ThreadRunner:
    """The webhook's in-process runner: one daemon thread that drains the queue when woken (after a route recorded
    jobs) and every `poll` seconds (retries, jobs other processes recorded). `wait()` is for tests."""

    def __init__(self, settings: Settings, store: Store, transport: Transport | None = None, poll: float = 2.0):
        self.worker = Worker(settings, store, transport=transport)
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            if self._thread is None:  # started on first use: a forked server process gets its own thread
                self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._busy = True
            self._wake.clear()
            try:
                self.worker.drain(stop=self._stop.is_set)
            except Exception:  # noqa: BLE001 - e.g. the database is down: log, keep the thread, try again
                log.exception("job runner: draining the queue failed")
            finally:
                self._busy = False

    def wait(self, timeout: float = 30) -> None:
        """Block until no job is due and none is running in this runner (or `timeout` seconds passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._busy and not self._wake.is_set():
                with self.worker.store.begin() as conn:
                    if not jobqueue.due_ids(conn, _now(), limit=1):
                        return
                self.wake()
            time.sleep(0.01)

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def _now() -> datetime:
    return datetime.now(UTC)
