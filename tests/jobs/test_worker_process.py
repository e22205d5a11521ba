"""The refresh queue's durability with the real `portal worker` command: separate processes configured only by
PORTAL_* variables, a real SMTP server, the test's store (SQLite and PostgreSQL) and the published folder.

- A worker killed with SIGKILL in the middle of a job (a re-render; between the two emails of one job, the second
  not yet accepted) loses nothing: the job stays `running` under the dead worker's lease, the next worker runs
  it again once the lease has passed, every page ends right and every email is sent exactly once.
- Two workers draining one queue never run a job twice.
- `portal worker --once` says which job failed and exits 1; the job waits for its retry with its error.

The kills land at chosen points, not at random ones: a kill between the mail server's "250 OK" and the worker's
record of it may send that email twice, by design (docs/refresh.md), so a random kill during an email could fail
this test for a reason the product documents. The points: a re-render seen `running` in the jobs table, and an
email whose recipient the SMTP server below keeps waiting at RCPT (nothing accepted yet for it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from portal.core.signing import Signer
from portal.disputes import service as disputes
from portal.publish.customer import read_customer_manifest
from portal.publish.targets import choose_target
from portal.store import disputes as disputestore
from portal.store import jobqueue
from tests.dispute_helpers import post_dispute
from tests.jobs.conftest import settings_env
from tests.payfixtures import attempt_id_sent, intent_event, invoice_page, post_pay, send_event, session_completed
from tests.ports import free_port
from tests.smtpserver import Recorder, SmtpServer

# A paid invoice's badge says when it was paid ("Paid on DATE", issue 20).
PAID = '<span class="badge badge-paid">Paid on '
PENDING = "Payment pending"
RESOLVED = "Dispute resolved"
SECOND_BILLING = "C00003,C00003-AR2,Receivables Desk,ar2@mueller3.example,billing\n"
TIMEOUT = 60  # seconds: the longest any wait of these tests may take


# --- a real SMTP server that can keep one recipient waiting --------------------------------------------------


class Holding(Recorder):
    """Keeps the RCPT of an address in `hold` waiting (once per address) until `release` is set: the worker is
    then inside a mail job, and nothing was accepted for that recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: set[str] = set()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address.lower() in self.hold:
            self.hold.discard(address.lower())
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            return "451 4.3.0 Try again later"  # the client is dead by now; if not, it must not count as sent
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def stall(self, address: str) -> None:
        self.holding.clear()
        self.release.clear()
        self.hold.add(address.lower())


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.controller.loop.close()  # the plain recorder's controller, never started: replaced by a holding one
    server.recorder = Holding()
    server.controller = Controller(server.recorder, hostname="127.0.0.1", port=server.port)
    server.start()
    try:
        yield server
    finally:
        server.recorder.release.set()
        server.stop()


@pytest.fixture
def pay_settings(pay_settings):
    """No PDFs: these tests are about who writes a page and when, and a PDF costs more than the pages it is for."""
    return pay_settings.replace(render_pdfs=False)


@pytest.fixture
def export_dir(export_dir: Path) -> Path:
    """The sample, with a second billing contact for C00003: its dispute's resolution is one job, two emails."""
    with (export_dir / "contacts.csv").open("a", encoding="utf-8") as contacts:
        contacts.write(SECOND_BILLING)
    return export_dir


# --- the worker processes ------------------------------------------------------------------------------------


def worker_env(settings, mail_url: str, **extra: str) -> dict[str, str]:
    """The environment of a deployed worker: the webhook's settings as PORTAL_* variables (nothing of the test's
    own PORTAL_* variables), its mail going to `mail_url`, a lease of 2 s (a killed worker's job runs again soon)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "STRIPE_", "WEBHOOK_"))}
    env.update(settings_env(settings))
    env.update({"PORTAL_MAIL_URL": mail_url, "PORTAL_JOB_LEASE_SECONDS": "2", "PORTAL_MAIL_RETRY_DELAY_MS": "100",
                **extra})
    return env


def portal(*args: str) -> list[str]:
    return [sys.executable, "-m", "portal", *args]


class Workers:
    """`portal worker --poll 0.05` processes, each logging to its own file; whatever is left is killed at the end."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = (self.folder / f"worker{len(self.processes) + 1}.log").open("wb")
        with log:
            process = subprocess.Popen(portal("worker", "--poll", "0.05"), cwd=self.folder, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def log(self, process: subprocess.Popen) -> str:
        return (self.folder / f"worker{self.processes.index(process) + 1}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for process in self.processes:
            if process.returncode is None and process.poll() is not None:
                raise AssertionError(f"a worker exited with {process.returncode}:\n{self.log(process)}")

    def kill(self, process: subprocess.Popen) -> None:
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL

    def stop(self, process: subprocess.Popen) -> None:
        """SIGTERM: the worker finishes the job in hand and exits 0."""
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0, self.log(process)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            # pytest shows a test's output only when it fails: then what each worker said is there
            print(f"--- worker {process.pid} (exit {process.returncode}) ---\n{self.log(process)}")


@contextmanager
def workers(folder: Path, env: dict[str, str]) -> Iterator[Workers]:
    pool = Workers(folder, env)
    try:
        yield pool
    finally:
        pool.close()


def wait_for(what: Callable[[], Any], message: str, pool: Workers, interval: float = 0.005) -> Any:
    """Poll `what()` until it is true; fail at once, with its log, when a worker of `pool` died on its own."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        pool.check_alive()
        time.sleep(interval)
    raise AssertionError(f"timed out after {TIMEOUT} s: {message}")


def all_jobs(store) -> list[Any]:
    with store.begin() as conn:
        return conn.execute(select(jobqueue.jobs).order_by(jobqueue.jobs.c.job_id)).all()


def job(store, job_id: int) -> Any:
    return next(r for r in all_jobs(store) if r.job_id == job_id)


def sent_by_job(store) -> dict[int, set[str]]:
    with store.begin() as conn:
        rows = conn.execute(select(jobqueue.job_messages)).all()
    found: dict[int, set[str]] = {}
    for row in rows:
        found.setdefault(row.job_id, set()).add(row.recipient)
    return found


def drained(store) -> bool:
    return all(r.state not in (jobqueue.QUEUED, jobqueue.RUNNING) for r in all_jobs(store))


def held_by(row: Any, process: subprocess.Popen) -> bool:
    return row.state == jobqueue.RUNNING and f":{process.pid}:" in row.worker


def address(message: Any) -> str:
    return parseaddr(str(message["To"]))[1].lower()


def snapshot(folder: str) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


# --- the events ----------------------------------------------------------------------------------------------


class Payments:
    """Customers paying through the webhook (job_runner = "external": it records jobs and runs none)."""

    def __init__(self, app, settings, standin):
        self.client, self.settings, self.standin = app.test_client(), settings, standin
        self.paid: list[tuple[str, str, str, str]] = []  # (customer, invoice, method, payer's email)

    def pay(self, customer_id: str, invoice_id: str, method: str = "card") -> str:
        n = len(self.paid) + 1
        payer, intent = f"payer{n}@pay.example", f"pi_test_{n}"
        assert post_pay(self.client, self.settings, customer_id, [invoice_id], method).status_code in (302, 303)
        attempt_id = attempt_id_sent(self.standin)
        events = [session_completed(attempt_id, paid=method == "card", intent=intent, email=payer)]
        if method != "card":  # the debit is under way: pending until it settles
            events.append(intent_event("payment_intent.processing", attempt_id, intent=intent))
        for event in events:
            assert send_event(self.client, event).status_code == 200
        self.paid.append((customer_id, invoice_id, method, payer))
        return payer

    def everyone(self, store, ach: int = 2) -> None:
        """Each customer pays its first open invoice by card; `ach` USD customers their second by bank debit."""
        for data in store.customer_data():
            invoices = data.invoices
            self.pay(data.customer.customer_id, invoices[0].invoice_id)
            if ach and data.customer.currency == "USD" and len(invoices) >= 2:
                self.pay(data.customer.customer_id, invoices[1].invoice_id, "us_bank_account")
                ach -= 1

    def assert_pages_show_them(self) -> None:
        for customer_id, invoice_id, method, _ in self.paid:
            page = invoice_page(self.settings, customer_id, invoice_id)
            assert (PAID if method == "card" else PENDING) in page, (customer_id, invoice_id, method)


def open_and_resolve_dispute(app, settings, store) -> tuple[str, int, str]:
    """C00003 disputes an invoice through the webhook; staff resolve it: (the invoice, the dispute id, whom the
    dispute was mailed to)."""
    data = next(d for d in store.customer_data() if d.customer.customer_id == "C00003")
    invoice_id = data.invoices[-1].invoice_id
    assert post_dispute(app.test_client(), settings, "C00003", [invoice_id]).status_code in (200, 302, 303)
    with store.begin() as conn:
        dispute_id = conn.execute(select(disputestore.disputes.c.dispute_id)).scalar_one()
    disputes.resolve(store, dispute_id, "credit_issued", "Credit note CN-1 issued", by="staff@supplier.example")
    return invoice_id, dispute_id, disputes.collector_address(settings, data.customer.collector)


# --- what the end state must be ------------------------------------------------------------------------------


def assert_every_email_once(smtp: SmtpServer, store, expected: set[str]) -> None:
    """Each expected recipient got exactly one message (each is the recipient of one email of these tests), no
    Message-ID came twice, and the messages are exactly those the jobs recorded."""
    messages = smtp.messages
    per_recipient = Counter(address(m) for m in messages)
    assert {to: n for to, n in per_recipient.items() if n > 1} == {}, [(address(m), m["Subject"]) for m in messages]
    assert set(per_recipient) == expected
    ids = Counter(str(m["Message-ID"]) for m in messages)
    assert {i: n for i, n in ids.items() if n > 1} == {}
    with store.begin() as conn:
        recorded = set(conn.execute(select(jobqueue.job_messages.c.message_id)).scalars())
    assert set(ids) == recorded


def assert_every_customer_published_as_of_now(settings, store) -> None:
    """The last refresh of every customer read the store after its last change, and its manifest says so."""
    with store.begin() as conn:
        rows = conn.execute(select(jobqueue.page_revisions)).all()
    assert rows
    target = choose_target(settings.target)
    for row in rows:
        assert row.published == row.revision, row.customer_id
        key = Signer(settings).customer_key(row.customer_id, store.key_version(row.customer_id))
        assert read_customer_manifest(target, row.customer_id, key).revision == row.revision, row.customer_id


# --- the tests -----------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_job_loses_nothing_and_mails_once(quiet_app, external, store, standin, smtp, tmp_path):
    before = snapshot(external.target)
    payments = Payments(quiet_app, external, standin)
    payments.everyone(store)
    disputed, dispute_id, collector = open_and_resolve_dispute(quiet_app, external, store)
    # The webhook answered every event (200 above) before any job ran: all are queued, the target is untouched.
    assert {r.state for r in all_jobs(store)} == {jobqueue.QUEUED}
    assert snapshot(external.target) == before
    resolution = next(r for r in all_jobs(store) if r.kind == "resolution_mail")
    first, second = (address(m) for m in disputes.resolution_messages(external, store, dispute_id))
    env = worker_env(external, smtp.url)
    with workers(tmp_path, env) as pool:
        # 1. Killed while it re-renders and publishes a customer.
        one = pool.start()
        rendering = wait_for(lambda: next((r for r in all_jobs(store) if r.kind == "refresh" and held_by(r, one)),
                                          None), "the first worker runs a refresh", pool)
        seen = datetime.now(UTC)
        pool.kill(one)
        row = job(store, rendering.job_id)
        assert held_by(row, one) and row.lease_until > seen and row.finished_at is None  # the dead worker's lease
        # 2. Killed between the two emails of one job: the first was accepted and recorded, the second is waiting
        # at RCPT (nothing accepted for it).
        smtp.recorder.stall(second)
        two = pool.start()
        wait_for(smtp.recorder.holding.is_set, "the second worker sends the held resolution", pool)
        pool.kill(two)
        smtp.recorder.release.set()
        assert held_by(job(store, resolution.job_id), two)
        assert {parseaddr(to)[1] for to in sent_by_job(store)[resolution.job_id]} == {first}
        assert second not in {address(m) for m in smtp.messages}
        # 3. The last worker finishes everything, the killed jobs once their leases have passed.
        three = pool.start()
        wait_for(lambda: drained(store), "the queue drains", pool, interval=0.05)
        pool.stop(three)
    rows = all_jobs(store)
    assert {r.state for r in rows} == {jobqueue.DONE}
    assert {r.job_id: r.attempts for r in rows if r.attempts != 1} == {rendering.job_id: 2, resolution.job_id: 2}
    payments.assert_pages_show_them()
    assert RESOLVED in invoice_page(external, "C00003", disputed)
    assert_every_customer_published_as_of_now(external, store)
    payers = {p[3] for p in payments.paid}
    assert_every_email_once(smtp, store, payers | {first, second, collector})


def test_two_workers_drain_one_queue_without_running_a_job_twice(quiet_app, external, store, standin, smtp,
                                                                 tmp_path):
    customers = list(store.customer_data())
    held = "payer1@pay.example"  # the first payment's receipt: whoever sends it waits, the other works on
    smtp.recorder.stall(held)
    # Nobody dies here: a long lease keeps a slow job on a busy machine from being taken for a dead worker's.
    env = worker_env(external, smtp.url, PORTAL_JOB_LEASE_SECONDS="120")
    with workers(tmp_path, env) as pool:
        both = pool.start(), pool.start()
        wait_for(lambda: all("running jobs" in pool.log(p) for p in both), "both workers are up", pool, 0.05)
        payments = Payments(quiet_app, external, standin)  # a burst of events while both look for work
        for data in customers:
            for invoice in data.invoices[:3]:
                payments.pay(data.customer.customer_id, invoice.invoice_id)
        wait_for(smtp.recorder.holding.is_set, "a worker sends the held receipt", pool)
        waiting = customers[0].customer.customer_id
        # The other worker runs every other customer's jobs meanwhile; none of the waiting customer's.
        wait_for(lambda: all(r.state == jobqueue.DONE for r in all_jobs(store) if r.customer_id != waiting),
                 "the other worker drains the other customers", pool, 0.05)
        mine = [r for r in all_jobs(store) if r.customer_id == waiting]
        sending = next(r for r in mine if r.state == jobqueue.RUNNING)
        assert sending.kind == "payment_mail" and held in sending.payload
        assert {r.state for r in mine if r.job_id > sending.job_id} == {jobqueue.QUEUED}  # one job at a time
        smtp.recorder.release.set()
        wait_for(lambda: drained(store), "the queue drains", pool, 0.05)
        for process in both:
            pool.stop(process)
    rows = all_jobs(store)
    assert {(r.state, r.attempts) for r in rows} == {(jobqueue.DONE, 1)}
    assert {r.worker.split(":")[1] for r in rows} == {str(p.pid) for p in both}  # both took a share
    payments.assert_pages_show_them()
    assert_every_customer_published_as_of_now(external, store)
    assert_every_email_once(smtp, store, {p[3] for p in payments.paid})


def test_worker_once_exits_nonzero_when_a_job_fails(quiet_app, external, store, standin, tmp_path):
    data = next(iter(store.customer_data()))
    customer_id = data.customer.customer_id
    payer = Payments(quiet_app, external, standin).pay(customer_id, data.invoices[0].invoice_id)
    refresh = next(r for r in all_jobs(store) if r.kind == "refresh")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the S3 endpoint refuses every connection
    env = {k: v for k, v in worker_env(external, f"outbox:{tmp_path / 'mail'}").items() if not k.startswith("AWS_")}
    env.update(PORTAL_TARGET="s3://nobucket/x", AWS_ENDPOINT_URL_S3=closed, AWS_ACCESS_KEY_ID="AKIDTEST",
               AWS_SECRET_ACCESS_KEY="not-a-secret", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    ran = subprocess.run(portal("worker", "--once"), cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "ran 2 job(s), 1 failed" in ran.stdout
    said = f"job {refresh.job_id} (refresh, customer {customer_id}): "
    assert said in ran.stderr and "cannot reach the S3 endpoint" in ran.stderr and "Traceback" not in ran.stderr
    row = job(store, refresh.job_id)
    assert (row.state, row.attempts) == (jobqueue.QUEUED, 1) and "cannot reach the S3 endpoint" in row.last_error
    assert row.run_after >= row.created_at + timedelta(seconds=2)  # not before its backoff
    assert {parseaddr(to)[1] for to in sent_by_job(store).popitem()[1]} == {payer}  # the other job did run
    shown = subprocess.run(portal("jobs"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("jobs: 1 queued, 0 running, 1 done, 0 failed; ")
    assert f"retrying: job {refresh.job_id} refresh customer {customer_id} after 1 run" in shown.stdout
    assert "cannot reach the S3 endpoint" in shown.stdout
