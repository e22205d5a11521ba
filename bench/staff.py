"""Benchmark: the staff dashboard at 10,000 customers, 100,000 invoices and 1,000,000 events.

    flock /tmp/bench.lock .venv/bin/python bench/staff.py [--reps 50] [--csv-reps 20] [--sqlite]

Generates the data with bulk inserts (COPY on PostgreSQL; not through the webhook) in a throwaway PostgreSQL
cluster (tests/pgserver.py), then times:
- the receipt rollup: its first full build, and an incremental refresh after 1,000 new events;
- through the Flask app (webhook.create_app, a logged-in staff session via tests/staff_helpers.login, the
  in-process test client: no network, but routing, argument checks, the queries and the template): the
  receipts view (first page, a deep page, "unopened after 30 days", a customer filter, and the first page
  sorted by every sortable column both ways), the receipts CSV export (full and filtered; total time and time
  to the first 64 KiB), the overview (KPIs and charts), and a customer's timeline;
- the same main paths on the data layer alone (portal/staff/*_table.py, portal/staff/kpis.py), to show what the
  view adds.
Each path runs `--reps` times (the full CSV `--csv-reps`); it prints p50/p95 per path and whether the p95 is
under the 300 ms target, and saves JSON in bench/results/ (git-ignored). `--sqlite` runs it on SQLite too.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import insert, text  # noqa: E402

from portal.balances import stored  # noqa: E402
from portal.staff import customers_table, kpis, receiptlines, receiptrollup, receipts_table  # noqa: E402
from portal.store import disputes as disputestore  # noqa: E402
from portal.store import payments as paystore  # noqa: E402
from portal.store.database import Store  # noqa: E402
from portal.store.tables import customers, events, invoices, snapshots  # noqa: E402

TARGET_MS = 300.0
NOW = datetime.now(UTC).replace(microsecond=0)
CURRENCIES = ["USD"] * 7 + ["EUR", "GBP", "CAD"]
GROUPS = ["enterprise", "mid-market", "small-business"]
COLLECTORS = ["dana@example.com", "lee@example.com", "sam@example.com", "kim@example.com"]
WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Tyrell",
         "Cyberdyne", "Soylent", "Oceanic", "Nakatomi", "Müller & Söhne", "Kessler", "Dunder", "Pendant"]
# (kind, share, names an invoice): what a real portal records most.
KINDS = [("email_sent", 0.25, True), ("link_opened", 0.30, True), ("page_viewed", 0.25, True),
         ("document_viewed", 0.12, True), ("page_viewed", 0.08, False)]


def naive(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None)


def generate(n_customers: int, n_invoices: int, n_events: int, seed: int = 1) -> dict[str, list[tuple]]:
    """Rows for every table, deterministic; times naive UTC (as the store keeps them)."""
    rng = random.Random(seed)
    seen = naive(NOW - timedelta(days=200))
    cust, currency_of = [], {}
    for n in range(1, n_customers + 1):
        cid = f"C{n:05d}"
        currency_of[cid] = rng.choice(CURRENCIES)
        cust.append((cid, f"{rng.choice(WORDS)} {rng.choice(['Inc.', 'LLC', 'GmbH', 'Ltd'])} {n}", currency_of[cid],
                     "en_US", rng.choice(GROUPS), rng.choice(COLLECTORS), True, seen, naive(NOW)))
    inv, inv_customer = [], []
    today = NOW.date()
    for n in range(1, n_invoices + 1):
        cid = f"C{int(n_customers * rng.random() ** 1.5) + 1:05d}"
        issue = today - timedelta(days=rng.randrange(0, 240))
        due = issue + timedelta(days=rng.choice([15, 30, 45, 60]))
        amount = rng.randrange(1_000, 5_000_000)
        is_open = rng.random() < 0.9
        balance = (amount if rng.random() < 0.8 else rng.randrange(0, amount)) if is_open else 0
        first = naive(datetime.combine(issue, datetime.min.time(), UTC) + timedelta(hours=20))
        closed = None if is_open else naive(NOW - timedelta(days=rng.randrange(0, 120)))
        iid = f"I{n:06d}"
        inv.append((iid, cid, f"INV-{100000 + n}", issue, due, amount, balance, currency_of[cid], "", "Net 30", "",
                    "0" * 64, is_open, first, first, closed))
        inv_customer.append((iid, cid, first))
    ev = []
    weights = [k[1] for k in KINDS]
    for _ in range(n_events):
        kind, _, names_invoice = rng.choices(KINDS, weights)[0]
        iid, cid, first = inv_customer[rng.randrange(n_invoices)]
        at = first + timedelta(minutes=rng.randrange(0, 60 * 24 * 120))
        ev.append((kind, at, cid, "", iid if names_invoice else "", "", "203.0.113.9", "Mozilla/5.0 bench", ""))
    pay, alloc = [], []
    for n in range(1, n_invoices // 20 + 1):
        iid, cid, first = inv_customer[rng.randrange(n_invoices)]
        status = rng.choices(["succeeded", "processing", "failed", "expired", "partially_refunded"],
                             [70, 8, 10, 10, 2])[0]
        method = "us_bank_account" if rng.random() < 0.4 else "card"
        amount = rng.randrange(1_000, 500_000)
        created = naive(NOW - timedelta(minutes=rng.randrange(0, 60 * 24 * 90)))
        aid = f"pay_{n:07d}"
        pay.append((aid, cid, status, method, currency_of[cid], amount, 0, amount, 0, 0, 0, False, "ap@example.com",
                    f"cs_{n}", f"pi_{n}", f"ch_{n}" if status == "succeeded" else "", "", created, created,
                    created if status in {"succeeded", "processing"} else None))
        alloc.append((aid, iid, cid, f"INV-{100000 + int(iid[1:])}", amount,
                      amount if status in {"succeeded", "processing"} else 0))
    disp, items = [], []
    for n in range(1, n_invoices // 200 + 1):
        iid, cid, first = inv_customer[rng.randrange(n_invoices)]
        status = rng.choice(["open", "under_review", "resolved"])
        created = naive(NOW - timedelta(days=rng.randrange(0, 60)))
        disp.append((n, cid, status, rng.choice(["pricing", "damaged", "not_received"]), 10_000, currency_of[cid],
                     "Please check the price.", "credit_issued" if status == "resolved" else "", "", "", created,
                     None, created + timedelta(days=3) if status == "resolved" else None))
        items.append((n, iid, f"INV-{100000 + int(iid[1:])}", 10_000))
    return {"customers": cust, "invoices": inv, "events": ev, "payment_attempts": pay, "payment_allocations": alloc,
            "disputes": disp, "dispute_invoices": items}


COLUMNS = {
    "customers": [c.name for c in customers.columns],
    "invoices": [c.name for c in invoices.columns],
    "events": ["kind", "occurred_at", "customer_id", "contact_id", "invoice_id", "document_id", "ip", "user_agent",
               "detail"],
    "payment_attempts": [c.name for c in paystore.payment_attempts.columns],
    "payment_allocations": [c.name for c in paystore.payment_allocations.columns],
    "disputes": [c.name for c in disputestore.disputes.columns],
    "dispute_invoices": [c.name for c in disputestore.dispute_invoices.columns],
}


def load(store: Store, data: dict[str, list[tuple]]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite (not through the store's import: it would
    hash 100,000 invoices for nothing here)."""
    if store.engine.dialect.name == "postgresql":
        raw = store.engine.raw_connection()
        try:
            with raw.cursor() as cur:
                for table, rows in data.items():
                    with cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                cur.execute("SELECT setval(pg_get_serial_sequence('disputes', 'dispute_id'), "
                            "(SELECT max(dispute_id) FROM disputes))")
            raw.commit()
        finally:
            raw.close()
    else:
        raw = store.engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, rows in data.items():
                marks = ", ".join("?" for _ in COLUMNS[table])
                cur.executemany(f"INSERT INTO {table} ({', '.join(COLUMNS[table])}) VALUES ({marks})",
                                [tuple(v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in row)
                                 for row in rows])
            raw.commit()
        finally:
            raw.close()
    with store.begin() as conn:
        conn.execute(insert(snapshots).values(as_of=NOW, imported_at=NOW, source="bench", customers=0, invoices=0,
                                              invoices_new=0, invoices_changed=0, invoices_closed=0))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"n": len(samples), "p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1),
            "max_ms": round(ordered[-1], 1)}


def drain(chunks: Any) -> int:
    return sum(len(c) for c in chunks)


def run(store: Store, reps: int, csv_reps: int, sizes: tuple[int, int, int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    t = time.perf_counter()
    load(store, generate(*sizes))
    results["generate_and_load_s"] = round(time.perf_counter() - t, 1)
    print(f"  loaded {sizes[0]} customers, {sizes[1]} invoices, {sizes[2]} events "
          f"in {results['generate_and_load_s']} s", flush=True)

    # Loaded in bulk, not imported: journal the payments and store every invoice's position as Store.migrate would
    # (portal/balances/position.py), then (PostgreSQL) the export's receipt lines, which carry the positions.
    results["positions_full_build_ms"] = round(timed(lambda: stored.rebuild(store)), 1)
    if store.engine.dialect.name == "postgresql":
        results["receipt_lines_full_build_ms"] = round(timed(lambda: receiptlines.rebuild(store)), 1)
    with store.begin() as conn:
        results["positions_exact"] = stored.stored(conn) == stored.recomputed(conn)
    print(f"  positions: full build {results['positions_full_build_ms']} ms, stored = recomputed: "
          f"{results['positions_exact']}", flush=True)
    results["rollup_full_build_ms"] = round(timed(lambda: receiptrollup.refresh(store)), 1)
    increments = []
    rng = random.Random(3)
    for _ in range(5):
        rows = [{"kind": rng.choice(["link_opened", "page_viewed", "email_sent"]), "occurred_at": NOW,
                 "customer_id": f"C{rng.randrange(1, sizes[0] + 1):05d}",
                 "invoice_id": f"I{rng.randrange(1, sizes[1] + 1):06d}"} for _ in range(1000)]
        with store.begin() as conn:
            conn.execute(insert(events), rows)
        increments.append(timed(lambda: receiptrollup.refresh(store)))
    results["rollup_refresh_after_1000_events"] = stats(increments)
    results["rollup_refresh_nothing_new"] = stats([timed(lambda: receiptrollup.refresh(store)) for _ in range(reps)])
    with store.begin() as conn:
        exact = receiptrollup.current(conn) == receiptrollup.recompute(conn)
    results["rollup_exact_after_increments"] = exact
    print(f"  rollup: full build {results['rollup_full_build_ms']} ms, +1000 events "
          f"{results['rollup_refresh_after_1000_events']['p50_ms']} ms, exact: {exact}", flush=True)

    if store.engine.dialect.name == "postgresql":
        # The lines' tails followed the rollup's full build and its refreshes: the export must be exact.
        lines = "".join(receipts_table.receipts_csv(store))
        results["receipt_lines_match_python_export"] = same = lines == "".join(
            receipts_table.receipts_csv(store, copy=False))
        print(f"  receipt lines: full build {results['receipt_lines_full_build_ms']} ms; after the refreshes, "
              f"the export is byte for byte the Python path's: {same}", flush=True)

    total = receipts_table.receipts_page(store).total
    deep = max(1, int(total / 50 * 0.8))
    unopened = receipts_table.ReceiptFilter(unopened_days=30)
    results["receipts_rows"] = total
    results["paths"] = {}
    with staff_client(store) as client:
        def get(url: str) -> Callable[[], Any]:
            def call() -> int:
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                return len(response.get_data())
            return call

        def first_data(url: str) -> Callable[[], Any]:
            """Time to the first 64 KiB of the body (what a browser starts saving), not just the header row."""
            def call() -> None:
                response = client.get(url, buffered=False)
                assert response.status_code == 200, (url, response.status_code)
                size = 0
                for chunk in response.response:
                    size += len(chunk)
                    if size >= 1 << 16:
                        break
                response.close()
            return call

        http: dict[str, tuple[Callable[[], Any], int]] = {
            "GET /staff/receipts (first page)": (get("/staff/receipts"), reps),
            f"GET /staff/receipts?page={deep} (deep page)": (get(f"/staff/receipts?page={deep}"), reps),
            "GET /staff/receipts?unopened=30": (get("/staff/receipts?unopened=30"), reps),
            "GET /staff/receipts?customer=globex": (get("/staff/receipts?customer=globex"), reps),
        }
        for sort in receipts_table.RECEIPT_SORT_NAMES:
            for direction in ("asc", "desc"):
                http[f"GET /staff/receipts?sort={sort}&dir={direction}"] = (
                    get(f"/staff/receipts?sort={sort}&dir={direction}"), reps)
        http["GET /staff/ (overview: KPIs, charts)"] = (get("/staff/"), reps)
        customer = f"C{random.Random(5).randrange(1, sizes[0] // 10):05d}"
        http[f"GET /staff/customer?id={customer} (timeline)"] = (get(f"/staff/customer?id={customer}"), reps)
        http["GET /staff/payments"] = (get("/staff/payments"), reps)
        http["GET /staff/disputes"] = (get("/staff/disputes"), reps)
        http["GET /staff/receipts.csv?unopened=30 (whole body)"] = (get("/staff/receipts.csv?unopened=30"), reps)
        http["GET /staff/receipts.csv (whole body, all open invoices)"] = (get("/staff/receipts.csv"), csv_reps)
        http["GET /staff/receipts.csv (first 64 KiB)"] = (first_data("/staff/receipts.csv"), reps)
        http["GET /staff/receipts.csv?sort=customer_name (whole body, all open invoices)"] = (
            get("/staff/receipts.csv?sort=customer_name"), csv_reps)
        for name, (call, n) in http.items():
            measure(results, name, call, n)
    data_layer: dict[str, tuple[Callable[[], Any], int]] = {
        "data: receipts_page (first page)": (lambda: receipts_table.receipts_page(store), reps),
        f"data: receipts_page(page={deep})": (lambda: receipts_table.receipts_page(store, page=deep), reps),
        "data: receipts_page(unopened 30)": (lambda: receipts_table.receipts_page(store, unopened), reps),
        "data: kpis.compute": (lambda: kpis.compute(store), reps),
        "data: customer_timeline": (lambda: customers_table.customer_timeline(
            store, f"C{random.randrange(1, sizes[0] // 10):05d}"), reps),
        "data: receipts_csv(unopened 30)": (lambda: drain(receipts_table.receipts_csv(store, unopened)), reps),
        "data: receipts_csv (all)": (lambda: drain(receipts_table.receipts_csv(store)), csv_reps),
    }
    for name, (call, n) in data_layer.items():
        measure(results, name, call, n)
    return results


def measure(results: dict[str, Any], name: str, call: Callable[[], Any], n: int) -> None:
    call()  # warm: plans and caches, as on a running server
    results["paths"][name] = stats([timed(call) for _ in range(n)])
    print(f"  {name:62s} {results['paths'][name]}", flush=True)


@contextmanager
def staff_client(store: Store, role: str = "viewer") -> Iterator[Any]:
    """A logged-in staff user of `role` on the real app (the tests' login helper: the form, its nonce and CSRF
    field)."""
    from tests.conftest import make_settings
    from tests.staff_helpers import add_staff, login
    from tests.webhook_helpers import make_app

    add_staff(store, "bench@example.com", role)
    with tempfile.TemporaryDirectory() as folder, make_app(make_settings(store.url), Path(folder)) as app:
        client = app.test_client()
        assert login(client, "bench@example.com").status_code == 302
        yield client


def table(label: str, results: dict[str, Any]) -> str:
    lines = [f"{label}: {results['receipts_rows']} open invoices in the receipts view; rollup full build "
             f"{results['rollup_full_build_ms']} ms; refresh after 1,000 new events "
             f"p50 {results['rollup_refresh_after_1000_events']['p50_ms']} ms / p95 "
             f"{results['rollup_refresh_after_1000_events']['p95_ms']} ms; nothing new p50 "
             f"{results['rollup_refresh_nothing_new']['p50_ms']} ms; exact after refreshes: "
             f"{results['rollup_exact_after_increments']}"
             + (f"; receipt lines full build {results['receipt_lines_full_build_ms']} ms, export exact after the "
                f"refreshes: {results['receipt_lines_match_python_export']}"
                if "receipt_lines_full_build_ms" in results else ""),
             *paths_table(results["paths"])]
    return "\n".join(lines)


def paths_table(paths: dict[str, dict[str, float]], width: int = 64) -> list[str]:
    """One line per timed path: p50, p95 and whether the p95 is under TARGET_MS."""
    lines = [f"{'path':{width}s} {'p50 ms':>8s} {'p95 ms':>8s}  < {TARGET_MS:.0f} ms"]
    for name, s in paths.items():
        verdict = "yes" if s["p95_ms"] < TARGET_MS else "NO"
        lines.append(f"{name:{width}s} {s['p50_ms']:8.1f} {s['p95_ms']:8.1f}  {verdict}")
    return lines


def save(report: dict[str, Any], prefix: str) -> Path:
    """The report as JSON in bench/results/ (git-ignored), named by the benchmark and the time."""
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"saved {path.relative_to(REPO)}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--csv-reps", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true", help="also run on SQLite")
    args = parser.parse_args()
    sizes = (args.customers, args.invoices, args.events)
    from tests.pgserver import PostgresServer

    report: dict[str, Any] = {"sizes": dict(zip(["customers", "invoices", "events"], sizes, strict=True)),
                              "measured": "Flask app (in-process test client, logged in) and the data layer",
                              "started": NOW.isoformat()}
    server = PostgresServer().start()
    try:
        store = Store(server.create_database("bench_staff"))
        store.migrate()
        print("PostgreSQL", flush=True)
        report["postgresql"] = run(store, args.reps, args.csv_reps, sizes)
        store.close()
    finally:
        server.stop()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{folder}/bench.db")
            store.migrate()
            print("SQLite", flush=True)
            report["sqlite"] = run(store, args.reps, args.csv_reps, sizes)
            store.close()
    print()
    for label in ("postgresql", "sqlite"):
        if label in report:
            print(table(label, report[label]))
            print()
    save(report, "staff")


if __name__ == "__main__":
    main()
