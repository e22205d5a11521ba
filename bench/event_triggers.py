"""Benchmark: what the worklist's trigger on `events` costs the webhook's hot path (migration 0013_worklist_facts).

    flock /tmp/bench.lock .venv/bin/python bench/event_triggers.py [--events 3000] [--rounds 6]

A person's page view of an invoice (`page_viewed` naming it) also writes `invoice_views` once per invoice, by a
trigger, in the statement that records the event. This times `EventLog.record_if_current("page_viewed", ...)`,
the beacon's path, on SQLite and PostgreSQL, against two databases made alike (bench/staff.py's generator: 1,000
customers, 10,000 invoices) of which one has the trigger dropped, in alternating rounds (the machine is shared).
Each round records `--events` views of invoices chosen at random (the first view of an invoice inserts, later ones
find it there). Prints microseconds per event with and without the trigger and their ratio per round pair.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import text  # noqa: E402

from bench import staff as base  # noqa: E402
from portal.store.database import Store  # noqa: E402
from portal.store.eventlog import EventLog  # noqa: E402


def _drop_trigger(store: Store) -> None:
    with store.begin() as conn:
        suffix = " ON events" if conn.dialect.name == "postgresql" else ""
        conn.execute(text(f"DROP TRIGGER events_invoice_viewed{suffix}"))


def _round(log: EventLog, pairs: list[tuple[str, str]], n: int, rng: random.Random) -> float:
    """Microseconds per recorded page view."""
    chosen = [rng.choice(pairs) for _ in range(n)]
    start = time.perf_counter()
    for customer_id, invoice_id in chosen:
        if log.record_if_current("page_viewed", customer_id, 1, invoice_id, require_invoice=True) is None:
            raise SystemExit(f"not recorded: {customer_id} {invoice_id}")
    return (time.perf_counter() - start) / n * 1e6


def compare(urls: tuple[str, str], args: argparse.Namespace) -> dict[str, object]:
    data = base.generate(1000, 10_000, 0)
    columns = base.COLUMNS["invoices"]
    pairs = [(row[columns.index("customer_id")], row[columns.index("invoice_id")]) for row in data["invoices"]]
    stores = [Store(url) for url in urls]
    for store in stores:
        store.migrate()
        base.load(store, {"customers": data["customers"], "invoices": data["invoices"]})
    _drop_trigger(stores[1])
    logs = [EventLog(store) for store in stores]
    rng = random.Random(3)
    with_trigger, without = [], []
    for n in range(args.rounds):  # alternate which side goes first
        order = (0, 1) if n % 2 == 0 else (1, 0)
        for side in order:
            (with_trigger if side == 0 else without).append(_round(logs[side], pairs, args.events, rng))
    with stores[0].begin() as conn:
        viewed = conn.execute(text("SELECT count(*) FROM invoice_views")).scalar()
    for log in logs:
        log.close()
    for store in stores:
        store.close()
    ratios = [a / b for a, b in zip(with_trigger, without, strict=True)]
    return {"with_us": statistics.median(with_trigger), "without_us": statistics.median(without),
            "ratios": [round(r, 3) for r in ratios], "median_ratio": round(statistics.median(ratios), 3),
            "invoices_viewed": viewed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    from tests.pgserver import PostgresServer

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = compare((f"sqlite:///{folder}/with.db", f"sqlite:///{folder}/without.db"), args)
    server = PostgresServer().start()
    try:
        results["postgresql"] = compare((server.create_database("with_trigger"),
                                         server.create_database("without_trigger")), args)
    finally:
        server.stop()
    print(f"{'database':12s} {'with us':>8s} {'without us':>11s}  ratio per round pair (with / without)")
    for name, r in results.items():
        print(f"{name:12s} {r['with_us']:8.1f} {r['without_us']:11.1f}  median {r['median_ratio']}  {r['ratios']}")


if __name__ == "__main__":
    main()
