"""Refresh benchmark: from a signed Stripe event POSTed to the webhook to the changed page readable on the target.

For each size (customers, 10 invoices each, from `portal sample-data`'s generator), on PostgreSQL (tests/pgserver.py;
`--sqlite` for SQLite), with the Stripe stand-in (tests/stripe_standin.py) as Stripe, the sample is imported and
built into a folder, which is the folder target (the one-machine default: the build folder is the target), and
published to a SeaweedFS bucket (tests/s3server.py), the S3 target. The webhook is served by gunicorn (2 sync
workers) with job_runner `thread` (each gunicorn worker runs jobs in a thread of its own: one machine) or `external`
(`--job-workers` `portal worker --poll 0.05` processes beside it: several machines). Then:

- latency, per size, target and runner: `--events` customers (at evenly spaced places of the customer list, so the
  customers measured at each size are alike), one at a time: POST /pay for one open invoice (not timed), then the
  time from sending the signed `checkout.session.completed` until the invoice's page on the target shows "Paid"
  (the file; an HTTP GET on S3), polled every 5 ms. Each server start begins with `--warmup` unmeasured events.
  After each event, once its jobs are done, the bare cost of that customer in that state (bench/refresh_parts.py:
  render_customer with a warm PageRenderer, then writing the rendered files to a fresh folder or putting them to a
  bucket; no queue, no webhook, no manifest). The events run in `--rounds` rounds that alternate the sizes, so that
  a change of the shared machine's load weighs on both sides of the ratio between sizes;
- burst, at `--burst-size`: `--burst-customers` customers pay `--burst-events` / customers invoices each, each
  payment its own attempt (POST /pay, not timed); their events, shuffled (or grouped: each customer's one after
  another), are POSTed as fast as the webhook takes them from 4 threads. Counted: refresh jobs done per customer,
  and the time from the first event until every customer's pages show all its payments. Runners: `auto` is
  thread for the folder and external for S3, the deployments that go with them;
- breakdown, per size and target: `--breakdown` refreshes run in this process with the worker's code, timed part
  by part (where the milliseconds go), after one untimed refresh.

Targets (issue 18): p95(10,000) / p95(1,000) <= 1.3; p95 / bare p95 <= 3; at most 2 refreshes per customer in the
burst. It prints a table and saves JSON in bench/results/ (git-ignored). The issue's figures, about 40 minutes on 2
shared CPUs, of which about 15 publish the 10,000-customer site (230,000 objects) to SeaweedFS:

    flock /tmp/bench.lock .venv/bin/python bench/refresh.py --sizes 1000,10000 --events 50 --targets folder,s3 \\
        --burst-events 1000 --burst-customers 200 --burst-order shuffled,grouped

The defaults are those, with shuffled bursts only. A quick check: `--sizes 200,300 --events 4 --burst-events 40
--burst-customers 8`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import portal.balances.stored  # noqa: E402, F401 - the derived tables follow every change (portal/store/derived.py)
import portal.staff.receiptlines  # noqa: E402, F401 - the receipt lines too
from bench.refresh_parts import (  # noqa: E402
    PAID,
    WEBHOOK_SECRET,
    Bare,
    Client,
    FolderPages,
    S3Pages,
    breakdown,
    burst,
    jobs_idle,
    percentile,
    serving,
    wait_until,
)

SECRET = "bench-secret-key-0123456789abcdef"
SITE_URL = "https://portal.example.com"


def open_invoices(export: Path) -> dict[str, list[str]]:
    """USD customers (in export order) -> their invoices with a balance: what one card payment can pay in full."""
    found: dict[str, list[str]] = {}
    with open(export / "customers.csv", newline="", encoding="utf-8") as handle:
        usd = [row["customer_id"] for row in csv.DictReader(handle) if row["currency"] == "USD"]
    with open(export / "invoices.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["currency"] == "USD" and Decimal(row["balance"]) >= 1:
                found.setdefault(row["customer_id"], []).append(row["invoice_id"])
    return {c: found[c] for c in usd if c in found}


def spread(candidates: list[str], count: int, taken: set[str]) -> list[str]:
    """`count` customers at evenly spaced places of the list (the sample's customers grow smaller down the list, the
    same way at every size), skipping those `taken`."""
    free = [c for c in candidates if c not in taken]
    if len(free) < count:
        raise SystemExit(f"the sample has {len(free)} suitable customers left, {count} are needed: use more customers")
    picked = [free[int((n + 0.5) * len(free) / count)] for n in range(count)]
    taken.update(picked)
    return picked


class Site:
    """One size: the database, the export, the built folder (the folder target) and its bucket (the S3 target)."""

    def __init__(self, size: int, work: Path, database: str, seaweed, standin, args):
        from portal.build.pipeline import build
        from portal.core.config import load_settings
        from portal.export.sample import write_sample
        from portal.publish.publisher import publish
        from portal.store.database import Store

        self.size, self.work = size, work
        self.export = write_sample(work / "export", size, size * 10, seed=7)
        self.folder = work / "site"
        self.bucket = f"site-{size}"
        self.env = {
            "PORTAL_DATABASE_URL": database, "PORTAL_SECRET_KEY": SECRET, "PORTAL_SITE_URL": SITE_URL,
            "PORTAL_BUILD_DIR": str(self.folder), "PORTAL_TARGET": str(self.folder),
            "PORTAL_MAIL_URL": f"outbox:{work / 'outbox'}", "PORTAL_STRIPE_SECRET_KEY": "sk_test_bench",
            "PORTAL_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "PORTAL_STRIPE_API_BASE": standin.base,
            # One client address sends everything: measure the routes, not the limiter's verdicts (it still runs).
            "WEBHOOK_RATE_LIMIT_IP": "10000000/60", "WEBHOOK_RATE_LIMIT_TOKEN": "10000000/60",
            "WEBHOOK_LOG_LEVEL": "WARNING"}
        self.settings = load_settings(env=self.env, config_file=None)
        self.store = Store(database)
        started = time.perf_counter()
        result = build(self.export, self.folder, self.settings, self.store)
        self.build_s = time.perf_counter() - started
        print(f"  built {size} customers: {result.summary()} in {self.build_s:.0f} s", flush=True)
        self.publish_s = 0.0
        if "s3" in args.targets:
            seaweed.create_bucket(self.bucket)
            os.environ.update(seaweed.env())
            started = time.perf_counter()
            published = publish(self.settings.replace(target=f"s3://{self.bucket}/site"), self.folder, workers=16)
            self.publish_s = time.perf_counter() - started
            print(f"  published to s3://{self.bucket}/site: {published.summary()}", flush=True)
        self.candidates = open_invoices(self.export)
        self.taken: set[str] = set()
        self.pages: dict = {"folder": FolderPages(self.folder)}
        self.bare: dict[str, Bare] = {}
        for target in args.targets:
            client = seaweed.client() if target == "s3" else None
            if client is not None:
                self.pages["s3"] = S3Pages(client, self.bucket, "site/")
            self.bare[target] = Bare(self.settings, self.store, target, client,
                                     seaweed.create_bucket(f"bare-{size}") if client else "")
            self.bare[target].measure(next(iter(self.candidates)))  # compiles the templates, connects

    def close(self) -> None:
        for part in (*self.pages.values(), *self.bare.values()):
            part.close()
        self.store.close()

    def target_env(self, target: str, seaweed) -> dict[str, str]:
        if target == "folder":
            return self.env
        return {**self.env, **seaweed.env(), "PORTAL_TARGET": f"s3://{self.bucket}/site"}

    def page_path(self, customer_id: str, invoice_id: str) -> str:
        from portal.build.pages import invoice_slug
        from portal.core.signing import Signer

        return f"c/{Signer(self.settings).customer_key(customer_id, 1)}/i/{invoice_slug(invoice_id)}.html"


def latency(site: Site, client: Client, target: str, customers: list[str], warmup: int) -> list[dict]:
    """One event at a time: its latency, the webhook's answer, and then the bare cost of that customer."""
    pages, bare = site.pages[target], site.bare[target]
    sessions = {c: (site.candidates[c][0], client.pay(c, site.candidates[c][0])) for c in customers}
    rows = []
    for n, customer_id in enumerate(customers):
        invoice_id, session = sessions[customer_id]
        path = site.page_path(customer_id, invoice_id)
        if PAID in pages.read(path):
            raise SystemExit(f"{path} shows Paid before the payment")
        payload = client.paid_event(session)
        start = time.perf_counter()
        answered = client.send(payload)
        shown = wait_until(lambda path=path: PAID in pages.read(path), timeout=120)
        if shown is None:
            raise SystemExit(f"{customer_id}: the page did not show the payment within 120 s")
        if wait_until(lambda: jobs_idle(site.store), timeout=120, interval=0.01) is None:
            raise SystemExit(f"{customer_id}: its jobs did not finish within 120 s")
        rows.append({"customer": customer_id, "latency_ms": (shown - start) * 1000, "answer_ms": answered * 1000,
                     **bare.measure(customer_id), "warmup": n < warmup})
        time.sleep(0.05)
    return rows


def summary(rows: list[dict]) -> dict:
    measured = [r for r in rows if not r["warmup"]]
    lat = [r["latency_ms"] for r in measured]
    bare_ms = [r["bare_ms"] for r in measured]
    return {"events": len(measured), "p50_ms": percentile(lat, 0.5), "p95_ms": percentile(lat, 0.95),
            "max_ms": max(lat), "answer_p50_ms": percentile([r["answer_ms"] for r in measured], 0.5),
            "answer_p95_ms": percentile([r["answer_ms"] for r in measured], 0.95),
            "bare_p50_ms": percentile(bare_ms, 0.5), "bare_p95_ms": percentile(bare_ms, 0.95),
            "bare_render_p50_ms": percentile([r["render_ms"] for r in measured], 0.5),
            "bare_write_p50_ms": percentile([r["write_ms"] for r in measured], 0.5),
            "files_median": statistics.median(r["files"] for r in measured),
            "files_max": max(r["files"] for r in measured),
            "warmup_ms": [round(r["latency_ms"]) for r in rows if r["warmup"]], "rows": rows}


HONEST = {"folder": "thread", "s3": "external"}  # one machine serves a folder; S3 goes with several workers


def run(args, postgres, seaweed, standin, work: Path, results: list[dict]) -> None:
    """Set up every size, then the latency rounds, the bursts and the breakdowns; `results` fills as they end."""
    sites = []
    for size in args.sizes:
        print(f"{size} customers, {size * 10} invoices:", flush=True)
        folder = work / str(size)
        database = postgres.create_database(f"refresh{size}") if postgres else f"sqlite:///{folder / 'portal.db'}"
        sites.append(Site(size, folder, database, seaweed, standin, args))
    results.extend({"size": s.size, "build_s": s.build_s, "publish_s": s.publish_s, "runs": {}, "breakdown": {},
                    "bursts": []} for s in sites)
    combos = [(t, r) for t in args.targets for r in args.runners]
    chosen = {(s.size, t, r): spread(list(s.candidates), args.rounds * (args.warmup + args.events), s.taken)
              for s in sites for t, r in combos}
    # Rounds that alternate the sizes: a change of the machine's load meanwhile weighs on both sides of the ratio.
    for round_ in range(args.rounds):
        for target, runner in combos:
            for site, result in zip(sites, results, strict=True):
                events = args.events // args.rounds + (round_ < args.events % args.rounds)
                mine = chosen[site.size, target, runner][round_::args.rounds][:args.warmup + events]
                with serving(site.target_env(target, seaweed), runner, site.work, 2, args.job_workers,
                             args.poll) as url:
                    rows = latency(site, Client(url, site, standin), target, mine, args.warmup)
                result["runs"].setdefault(f"{target}/{runner}", []).extend(rows)
                done = summary(rows)
                print(f"  round {round_ + 1}: {site.size:>6} {target:<6} {runner:<8} p50 {done['p50_ms']:6.0f} ms  "
                      f"p95 {done['p95_ms']:6.0f} ms  bare p50 {done['bare_p50_ms']:5.0f} ms  warm-up "
                      f"{done['warmup_ms']}", flush=True)
    for result in results:
        summarize(result)
    for site, result in zip(sites, results, strict=True):
        if site.size != args.burst_size or args.burst_events <= 0:
            continue
        per = max(1, args.burst_events // args.burst_customers)
        eligible = [c for c, invoices in site.candidates.items() if len(invoices) >= per]
        for target in args.targets:
            for runner in ([HONEST[target]] if args.burst_runners == ["auto"] else args.burst_runners):
                for order in args.burst_order:
                    customers = spread(eligible, args.burst_customers, site.taken)
                    warm = spread(list(site.candidates), args.warmup, site.taken)
                    with serving(site.target_env(target, seaweed), runner, site.work, 2, args.job_workers,
                                 args.poll) as url:
                        client = Client(url, site, standin)
                        latency(site, client, target, warm, args.warmup)  # the processes compile first
                        b = {"target": target, "runner": runner,
                             **burst(site, client, site.pages[target], customers, per, order)}
                    result["bursts"].append(b)
                    print(f"  burst {site.size} {target}/{runner} {order}: {b['events']} events posted in "
                          f"{b['post_s']:.1f} s, every page shows them after {b['all_shown_s']:.1f} s; refreshes "
                          f"{b['refreshes']} (at most {b['refreshes_max']} per customer)", flush=True)
    for site, result in zip(sites, results, strict=True):
        for target in args.targets if args.breakdown else ():
            result["breakdown"][target] = breakdown(site, target, seaweed,
                                                    spread(list(site.candidates), args.breakdown + 1, site.taken))
        site.close()


def summarize(result: dict) -> None:
    if isinstance(result["runs"], dict):  # rows per target/runner, until every round has run
        result["runs"] = [{"target": k.split("/")[0], "runner": k.split("/")[1], **summary(rows)}
                          for k, rows in result["runs"].items() if any(not r["warmup"] for r in rows)]


def report(results: list[dict], args, started: float) -> None:
    for size in results:
        summarize(size)
    print(f"\n{'customers':>9} {'target':<6} {'runner':<8} {'events':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
          f"{'answer':>6} {'bare50':>6} {'bare95':>6} {'p95/bare95':>10} {'files':>5}")
    for size in results:
        for r in size["runs"]:
            r["p95_over_bare"] = r["p95_ms"] / r["bare_p95_ms"]
            print(f"{size['size']:>9} {r['target']:<6} {r['runner']:<8} {r['events']:>6} {r['p50_ms']:>7.0f} "
                  f"{r['p95_ms']:>7.0f} {r['max_ms']:>7.0f} {r['answer_p50_ms']:>6.0f} {r['bare_p50_ms']:>6.0f} "
                  f"{r['bare_p95_ms']:>6.0f} {r['p95_over_bare']:>10.2f} {r['files_median']:>5.0f}")
    ratios = {}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        for a, b in zip(small["runs"], large["runs"], strict=True):
            key = f"{a['target']}/{a['runner']}"
            ratios[key] = b["p95_ms"] / a["p95_ms"]
            print(f"p95({large['size']}) / p95({small['size']}) {key}: {ratios[key]:.2f} (target <= 1.3)")
    print("p95 / bare p95 (target <= 3): " + ", ".join(
        f"{s['size']} {r['target']}/{r['runner']} {r['p95_over_bare']:.2f}" for s in results for r in s["runs"]))
    for size in results:
        for b in size["bursts"]:
            print(f"burst at {size['size']} {b['target']}/{b['runner']}: {b['events']} {b['order']} events over "
                  f"{b['customers']} customers posted in {b['post_s']:.1f} s (answer p95 {b['answer_p95_ms']:.0f} ms); "
                  f"every page shows its payments after {b['all_shown_s']:.1f} s (half after {b['half_shown_s']:.1f} "
                  f"s); refreshes {b['refreshes']}, per customer max {b['refreshes_max']}, mean "
                  f"{b['refreshes_mean']:.2f}, {b['over_2']} customers over 2 (target <= 2); {b['payment_mails']} "
                  f"payment emails; {b['failed_jobs']} failed jobs")
        for target, parts in size["breakdown"].items():
            print(f"one refresh at {size['size']}, {target} (in-process, mean of {parts['refreshes']}; ms per "
                  "refresh, calls):")
            for label, ms in sorted(parts["parts_ms"].items(), key=lambda kv: -kv[1]):
                print(f"  {label:<36} {ms:>8.1f} ms  {parts['calls'][label]:>6}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"refresh-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"args": vars(args), "seconds": time.perf_counter() - started, "cpus": os.cpu_count(),
                                "load_average": os.getloadavg(), "ratios": ratios, "results": results}, indent=1))
    print(f"\n{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}; results: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="customers, comma-separated (10 invoices each)")
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=4, help="unmeasured events first (each process compiles)")
    parser.add_argument("--targets", default="folder,s3")
    parser.add_argument("--runners", default="thread,external")
    parser.add_argument("--job-workers", type=int, default=2, help="`portal worker` processes (external runner)")
    parser.add_argument("--poll", type=float, default=0.05, help="their --poll (the least it accepts)")
    parser.add_argument("--burst-events", type=int, default=1000)
    parser.add_argument("--burst-customers", type=int, default=200)
    parser.add_argument("--burst-size", type=int, default=None, help="the size the burst runs at (default: largest)")
    parser.add_argument("--burst-order", default="shuffled",
                        help="shuffled (the events in a random order), grouped (each customer's one after another), "
                        "or both: shuffled,grouped")
    parser.add_argument("--burst-runners", default="auto",
                        help="auto: thread for the folder (one machine), external for S3; or a list")
    parser.add_argument("--rounds", type=int, default=2, help="latency rounds, alternating the sizes")
    parser.add_argument("--breakdown", type=int, default=5, help="refreshes timed part by part per size and target")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, site, outbox)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.targets = args.targets.split(",")
    args.runners = args.runners.split(",")
    args.burst_size = args.burst_size or max(args.sizes)
    args.burst_order = args.burst_order.split(",")
    args.burst_runners = args.burst_runners.split(",")
    from tests.pgserver import PostgresServer
    from tests.s3server import SeaweedS3
    from tests.stripe_standin import StripeStandIn

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the servers below are stopped and removed
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-refresh."))
    postgres = seaweed = standin = None
    results: list[dict] = []
    try:
        standin = StripeStandIn().start()
        postgres = None if args.sqlite else PostgresServer().start()
        seaweed = SeaweedS3().start() if "s3" in args.targets else None
        print(f"{'SQLite' if args.sqlite else 'PostgreSQL'}; {os.cpu_count()} CPUs shared with PostgreSQL, SeaweedFS, "
              f"gunicorn, the workers and other users; load average {os.getloadavg()[0]:.1f}", flush=True)
        run(args, postgres, seaweed, standin, work, results)
    finally:
        if results:
            report(results, args, started)
        for server in (seaweed, postgres, standin):
            if server is not None:
                server.stop()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
