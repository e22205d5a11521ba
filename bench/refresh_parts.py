"""The parts of bench/refresh.py that are not its setup and its report: reading a page as a reader does (a file of
the folder target, an HTTP GET on S3), the bare cost that a refresh is compared with, the servers of one measured
setup (the webhook under gunicorn, `portal worker` processes), the webhook seen from outside (/pay, signed events),
the burst, and the timed breakdown of refreshes run in-process.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef"
PORTAL = str(Path(sys.executable).parent / "portal")
PAID = '<span class="badge badge-paid">Paid</span>'
BARE_WORKERS = 8  # the same number of requests in flight as a refresh's upload (portal/publish/customer.py)


# --- reading a page as a reader of the target does ----------------------------------------------------------------


class FolderPages:
    """Pages of a folder target: the file, read whole (the target replaces files atomically)."""

    def __init__(self, root: Path):
        self.root = root

    def read(self, path: str) -> str:
        try:
            return (self.root / path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        pass


class S3Pages:
    """Pages of a bucket, by plain HTTP GETs of presigned URLs on one kept-alive connection: what a browser behind
    a CDN fetches, and cheap enough to ask every 5 ms without taking the CPU the refresh needs."""

    def __init__(self, client, bucket: str, prefix: str):
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.urls: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None

    def read(self, path: str) -> str:
        url = self.urls.get(path)
        if url is None:
            url = self.urls[path] = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": f"{self.prefix}{path}"}, ExpiresIn=3600)
        parts = urlsplit(url)
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(parts.netloc, timeout=10)
            try:
                self.connection.request("GET", f"{parts.path}?{parts.query}")
                answer = self.connection.getresponse()
                body = answer.read()
                return body.decode("utf-8") if answer.status == 200 else ""
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        return ""

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def wait_until(check, timeout: float, interval: float = 0.005) -> float | None:
    """perf_counter() at the first moment `check()` is true, polling every `interval`; None after `timeout`."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            return None
        time.sleep(interval)


# --- the bare cost: render the customer, write its files, nothing else ----------------------------------------------


class Bare:
    """Rendering one customer's files (portal.build.customer.render_customer with a warm PageRenderer) and writing
    the rendered ones to a fresh folder, or putting them to a bucket with as many requests in flight as a refresh
    uses: no queue, no webhook, no manifest, no comparison. Supplied documents are neither rendered nor written
    (a refresh does not upload them either), which keeps the baseline as small as it can be."""

    def __init__(self, settings, store, target: str, s3_client=None, bucket: str = ""):
        from portal.build.pages import PageRenderer

        self.renderer = PageRenderer(settings)
        self.store, self.target, self.client, self.bucket = store, target, s3_client, bucket
        self.folder = Path(tempfile.mkdtemp(prefix="bench-bare."))
        self.pool = ThreadPoolExecutor(BARE_WORKERS) if target == "s3" else None
        self.runs = 0

    def measure(self, customer_id: str) -> dict:
        from portal.build.customer import render_customer

        start = time.perf_counter()
        rendered = render_customer(self.renderer, self.store, customer_id)
        rendered_at = time.perf_counter()
        files = [(o.path, o.data) for o in rendered.outputs if o.data is not None]
        self.runs += 1
        if self.target == "s3":
            prefix = f"{self.runs}/"
            list(self.pool.map(lambda f: self.client.put_object(Bucket=self.bucket, Key=prefix + f[0], Body=f[1]),
                               files))
        else:
            root = self.folder / str(self.runs)
            for path, data in files:
                out = root / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
        end = time.perf_counter()
        return {"bare_ms": (end - start) * 1000, "render_ms": (rendered_at - start) * 1000,
                "write_ms": (end - rendered_at) * 1000, "files": len(files),
                "bytes": sum(len(d) for _, d in files), "supplied": len(rendered.outputs) - len(files)}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


# --- the servers of one measured setup -------------------------------------------------------------------------------


@contextmanager
def serving(env: dict[str, str], runner: str, folder: Path, gunicorn_workers: int, job_workers: int, poll: float):
    """The webhook under gunicorn (`gunicorn_workers` sync workers), with job_runner `runner`; for "external",
    `job_workers` `portal worker --poll POLL` processes too. Yields the webhook's base URL."""
    from tests.gunicorn_server import GunicornServer

    env = {**env, "PORTAL_JOB_RUNNER": runner}
    log = folder / f"gunicorn-{runner}.log"
    server = GunicornServer("webhook:create_app()", env, log, workers=gunicorn_workers, chdir=ROOT)
    workers: list[subprocess.Popen] = []
    try:
        server.start(timeout=60)
        if runner == "external":
            for n in range(job_workers):
                with open(folder / f"worker-{n}.log", "ab") as out:
                    workers.append(subprocess.Popen([PORTAL, "worker", "--poll", str(poll)], cwd=folder,
                                                    env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT))
            time.sleep(2)
            for n, process in enumerate(workers):
                if process.poll() is not None:
                    tail = (folder / f"worker-{n}.log").read_text(errors="replace")[-3000:]
                    raise SystemExit(f"portal worker exited with {process.returncode}:\n{tail}")
        yield server.url
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        server.stop()


# --- where the milliseconds of one refresh go -----------------------------------------------------------------------


class Breakdown:
    """Runs queued jobs in this process with the worker's own code (portal.jobs.worker.Worker) and times their
    parts by wrapping the functions the refresh calls: claiming, reading the store, rendering, the customer's
    manifest, uploads, the manifest write, recording the revision, finishing."""

    def __init__(self, settings, store):
        import portal.build.customer as customer
        import portal.jobs.refresh as refresh
        import portal.jobs.worker as worker
        from portal.store import jobqueue

        self.times: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.worker = worker.Worker(settings, store)
        self._undo = []
        for module, name, label in ((jobqueue, "claim", "claim"), (jobqueue, "finish", "finish"),
                                    (jobqueue, "record_published", "record revision"),
                                    (refresh, "render_customer", "render_customer (all)"),
                                    (refresh, "publish_customer", "publish_customer (all)"),
                                    (customer.position, "inputs", "store: positions"),
                                    (customer, "dispute_states", "store: disputes")):
            self._wrap(module, name, label)
        self._wrap(store, "customer_data", "store: customer data")
        refresher = self.worker.refresher
        self._wrap(refresher.renderer, "render", "render pages + PDFs")
        self._wrap(refresher.target, "read", "target: read customer manifest")
        self._wrap(refresher.target, "put", "target: put (each)")
        self._wrap(refresher.target, "write", "target: write customer manifest")
        self._wrap(refresher.target, "remote_sha", "target: remote_sha (each)")

    def _wrap(self, owner, name: str, label: str) -> None:
        real = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.times[label] += time.perf_counter() - start
                self.counts[label] += 1

        setattr(owner, name, timed)
        self._undo.append((owner, name, real))

    def run(self) -> list:
        """Run every due job (the refresh, then the payer's email); their outcomes, the refreshes timed whole."""
        outcomes = []
        while True:
            start = time.perf_counter()
            outcome = self.worker.run_next()
            if outcome is None:
                return outcomes
            self.times[f"job: {outcome.job.kind} (whole)"] += time.perf_counter() - start
            self.counts[f"job: {outcome.job.kind} (whole)"] += 1
            outcomes.append(outcome)

    def close(self) -> None:
        for owner, name, real in reversed(self._undo):
            setattr(owner, name, real)


# --- the webhook seen from outside, the burst, the breakdown ---------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]  # nearest rank


class Client:
    """The webhook seen from outside: /pay through the stand-in, and signed Stripe events."""

    def __init__(self, url: str, site, standin):
        import requests

        self.url, self.site, self.standin = url, site, standin
        self.local = threading.local()
        self.session_class = requests.Session

    @property
    def http(self):
        if getattr(self.local, "session", None) is None:
            self.local.session = self.session_class()
        return self.local.session

    def pay(self, customer_id: str, invoice_id: str) -> dict:
        """POST /pay for the invoice (its whole balance, by card); the stand-in's Checkout Session."""
        from portal.core.signing import Signer

        token = Signer(self.site.settings).page_token("page", customer_id, 1)
        answer = self.http.post(f"{self.url}/pay", data={"page_token": token, "invoice": [invoice_id],
                                                          "method": "card"}, allow_redirects=False, timeout=60)
        if answer.status_code != 303:
            raise SystemExit(f"/pay for {customer_id}/{invoice_id}: {answer.status_code} {answer.text[:300]}")
        return self.standin.sessions[answer.headers["Location"].rsplit("/", 1)[-1]]

    def paid_event(self, session: dict) -> bytes:
        return json.dumps(self.standin.event("checkout.session.completed",
                                             self.standin.session_object(session, payment_status="paid"))).encode()

    def send(self, payload: bytes) -> float:
        """POST the event, signed now; seconds until the webhook answered."""
        import stripe

        text = payload.decode()
        header = stripe.WebhookSignature.generate_signature_header(text, WEBHOOK_SECRET, timestamp=int(time.time()))
        start = time.perf_counter()
        answer = self.http.post(f"{self.url}/stripe/events", data=payload, timeout=60,
                                headers={"Stripe-Signature": header, "Content-Type": "application/json"})
        if answer.status_code != 200:
            raise SystemExit(f"/stripe/events: {answer.status_code} {answer.text[:300]}")
        return time.perf_counter() - start


def jobs_idle(store, customer_ids: list[str] | None = None) -> bool:
    from sqlalchemy import func, select

    from portal.store.jobqueue import QUEUED, RUNNING, jobs

    query = select(func.count()).select_from(jobs).where(jobs.c.state.in_([QUEUED, RUNNING]))
    if customer_ids is not None:
        query = query.where(jobs.c.customer_id.in_(customer_ids))
    with store.begin() as conn:
        return conn.execute(query).scalar_one() == 0


def burst(site, client: Client, pages, customers: list[str], per_customer: int, order: str) -> dict:
    from sqlalchemy import func, select

    from portal.store.jobqueue import DONE, FAILED, REFRESH, jobs

    wanted = {c: site.candidates[c][:per_customer] for c in customers}
    pairs = [(c, i) for c, invoices in wanted.items() for i in invoices]
    with ThreadPoolExecutor(4) as pool:
        sessions = list(pool.map(lambda p: client.pay(*p), pairs))
    payloads = [client.paid_event(s) for s in sessions]  # grouped: each customer's payments one after another
    if order == "shuffled":
        random.Random(7).shuffle(payloads)
    paths = {c: [site.page_path(c, i) for i in invoices] for c, invoices in wanted.items()}
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(client.send, payloads))
    posted = time.perf_counter() - start
    pending, done_at, rounds = dict(paths), {}, 0
    while pending and time.perf_counter() - start < 900:
        rounds += 1
        for customer_id, left in list(pending.items()):
            while left and PAID in pages.read(left[0]):
                left.pop(0)
            if not left:
                done_at[customer_id] = time.perf_counter() - start
                del pending[customer_id]
        time.sleep(0.05)
    if pending:
        raise SystemExit(f"burst: {len(pending)} customers' pages still lack a payment after 900 s")
    wait_until(lambda: jobs_idle(site.store, customers), timeout=300, interval=0.05)
    with site.store.begin() as conn:
        counts = dict(conn.execute(select(jobs.c.customer_id, func.count()).where(
            jobs.c.kind == REFRESH, jobs.c.state == DONE, jobs.c.customer_id.in_(customers))
            .group_by(jobs.c.customer_id)).all())
        failed = conn.execute(select(func.count()).select_from(jobs).where(
            jobs.c.state == FAILED, jobs.c.customer_id.in_(customers))).scalar_one()
        mails = conn.execute(select(func.count()).select_from(jobs).where(
            jobs.c.kind == "payment_mail", jobs.c.state == DONE, jobs.c.customer_id.in_(customers))).scalar_one()
    per = [counts.get(c, 0) for c in customers]
    return {"events": len(payloads), "customers": len(customers), "order": order, "post_s": posted,
            "answer_p95_ms": percentile(answers, 0.95) * 1000, "all_shown_s": max(done_at.values()),
            "half_shown_s": percentile(list(done_at.values()), 0.5), "poll_rounds": rounds,
            "refreshes": sum(per), "refreshes_max": max(per), "refreshes_mean": sum(per) / len(per),
            "over_2": sum(1 for n in per if n > 2), "payment_mails": mails, "failed_jobs": failed}


def breakdown(site, target: str, seaweed, customers: list[str]) -> dict:
    """Pay in this process, then run the jobs with the worker's code, timed part by part (no servers running)."""
    from portal.core.config import load_settings
    from portal.payments.events import apply_event
    from portal.payments.start import start_payment

    settings = load_settings(env=site.target_env(target, seaweed), config_file=None)
    timer = Breakdown(settings, site.store)
    try:
        for n, customer_id in enumerate(customers):
            started = start_payment(site.store, settings, customer_id, [site.candidates[customer_id][0]], {}, [],
                                    "card")
            event = {"id": f"evt_bench_{target}_{n}_{customer_id}", "object": "event", "type":
                     "checkout.session.completed", "livemode": False, "created": int(time.time()),
                     "data": {"object": {"id": f"cs_bench_{target}_{n}", "object": "checkout.session",
                                         "livemode": False, "client_reference_id": started.attempt_id,
                                         "payment_intent": f"pi_bench_{target}_{n}", "payment_status": "paid",
                                         "customer_details": {"email": "payer@example.com"}}}}
            start = time.perf_counter()
            if apply_event(site.store, event) is None:
                raise SystemExit(f"breakdown: the event for {customer_id} changed nothing")
            timer.times["webhook: apply_event (not in the job)"] += time.perf_counter() - start
            timer.counts["webhook: apply_event (not in the job)"] += 1
            outcomes = timer.run()
            if not all(o.ok for o in outcomes):
                raise SystemExit(f"breakdown: a job failed: {[o.error for o in outcomes if not o.ok]}")
            if n == 0:  # the first refresh of a process makes its S3 client and checks the target: not timed
                timer.times.clear()
                timer.counts.clear()
    finally:
        timer.close()
    refreshes = timer.counts["job: refresh (whole)"]
    return {"refreshes": refreshes, "parts_ms": {k: round(v * 1000 / refreshes, 2) for k, v in timer.times.items()},
            "calls": {k: round(v / refreshes, 2) for k, v in timer.counts.items()}}
