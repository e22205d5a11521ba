"""Benchmark: the collector's workbench at 10,000 customers, 100,000 invoices, 1,000,000 events and 200,000 touches.

    flock /tmp/bench.lock .venv/bin/python bench/workbench.py [--reps 20] [--touches 200000]

The data of bench/staff.py (its generator and bulk load, in a throwaway PostgreSQL cluster) plus, for the
workbench, 200,000 touches over the last 30 days spread over the collectors and their working hours, 5,000 promises
(open, kept, broken, some due today), 300 holds and 2,000 questions. Then times, on the data layer and through the
Flask app (in-process test client, a logged-in manager): today's worklist of one collector and of the team (its
first page of 100 items, as the page shows it, and the team's 20th), and the activity report (this week) of one
collector and of the team. Prints p50/p95 per path against the 300 ms target
and saves JSON in bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import text  # noqa: E402

from bench import staff as base  # noqa: E402
from portal.balances import stored  # noqa: E402
from portal.collect.worklist import build_worklist  # noqa: E402
from portal.staff.activity import activity  # noqa: E402
from portal.store import disputes as disputestore  # noqa: E402
from portal.store.collect import holds, promises, touches  # noqa: E402
from portal.store.database import Store  # noqa: E402

NOW = base.NOW
COLLECTOR = base.COLLECTORS[0]
SERIALS = ("touch_id", "promise_id", "hold_id", "question_id")
for table in (touches, promises, holds, disputestore.questions):
    base.COLUMNS[table.name] = [c.name for c in table.columns if c.name not in SERIALS]


def generate(n_customers: int, n_touches: int, seed: int = 2) -> dict[str, list[tuple]]:
    """Workbench rows (naive UTC times, as the store keeps them); the customers are bench/staff.py's."""
    rng = random.Random(seed)
    today = NOW.date()
    kinds = [("call", 0.3), ("email", 0.3), ("portal_email", 0.3), ("note", 0.1)]
    rows = []
    for _ in range(n_touches):
        cid = f"C{rng.randrange(1, n_customers + 1):05d}"
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        day = today - timedelta(days=rng.randrange(0, 30))
        at = datetime.combine(day, time(8), UTC) + timedelta(seconds=rng.randrange(0, 9 * 3600))
        who = rng.choice(base.COLLECTORS)
        rows.append((cid, kind, rng.choice(["reached", "voicemail", "no_answer"]) if kind == "call" else "",
                     "bench", who, "" if kind == "portal_email" else who, "", base.naive(at)))
    made = []
    for n in range(5000):
        status = rng.choice(["open", "open", "kept", "broken"])
        day = today + timedelta(days=rng.randrange(-20, 10)) if n % 50 else today
        created = base.naive(NOW - timedelta(days=rng.randrange(1, 30)))
        made.append((f"C{rng.randrange(1, n_customers + 1):05d}", rng.randrange(1000, 500_000), "USD", day,
                     "collector", COLLECTOR, rng.choice(base.COLLECTORS), status, created,
                     None if status == "open" else base.naive(NOW - timedelta(days=rng.randrange(0, 10))), 0))
    held = [(f"C{rng.randrange(1, n_customers + 1):05d}", "bench", today + timedelta(days=rng.randrange(-20, 20)),
             COLLECTOR, base.naive(NOW - timedelta(days=30)), "", None) for _ in range(300)]
    asked = [(f"C{rng.randrange(1, n_customers + 1):05d}", "", "Where is my credit note?",
              base.naive(NOW - timedelta(hours=rng.randrange(1, 500))), "") for _ in range(2000)]
    return {"touches": rows, "promises": made, "holds": held, "questions": asked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--touches", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    from tests.conftest import make_settings
    from tests.pgserver import PostgresServer

    report: dict[str, Any] = {"sizes": vars(args), "started": NOW.isoformat(), "paths": {}}
    server = PostgresServer().start()
    try:
        store = Store(server.create_database("bench_workbench"))
        store.migrate()
        base.load(store, base.generate(args.customers, args.invoices, args.events))
        base.load(store, generate(args.customers, args.touches))
        stored.rebuild(store)
        # The positions were written after the loader's ANALYZE, and the triggers of the worklist's facts updated a
        # customer's latest touch once per touch loaded (dead row versions): autovacuum would soon clean up and
        # analyse a live database, and plans made on empty statistics or read through bloat mislead.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        print(f"PostgreSQL: loaded {args.customers} customers, {args.invoices} invoices, {args.events} events, "
              f"{args.touches} touches", flush=True)
        settings = make_settings(store.url)
        today = NOW.date()
        base.measure(report, "worklist, one collector (data layer)",
                     lambda: build_worklist(store, settings, COLLECTOR, NOW), args.reps)
        base.measure(report, "worklist, the team (data layer)",
                     lambda: build_worklist(store, settings, "", NOW), args.reps)
        base.measure(report, "worklist, the team, page 20 (data layer)",
                     lambda: build_worklist(store, settings, "", NOW, page=20), args.reps)
        base.measure(report, "activity this week, one collector (data layer)",
                     lambda: activity(store, settings, "week", today, COLLECTOR), args.reps)
        base.measure(report, "activity this week, the team (data layer)",
                     lambda: activity(store, settings, "week", today), args.reps)
        with base.staff_client(store, "manager") as client:
            for name, url in [("GET /staff/worklist?collector=one", f"/staff/worklist?collector={COLLECTOR}"),
                              ("GET /staff/worklist (the team)", "/staff/worklist"),
                              ("GET /staff/activity?collector=one", f"/staff/activity?collector={COLLECTOR}"),
                              ("GET /staff/activity (the team, this week)", "/staff/activity")]:
                base.measure(report, name, lambda url=url: client.get(url).get_data(), args.reps)
        store.close()
    finally:
        server.stop()
    print()
    print("\n".join(base.paths_table(report["paths"], 52)))
    base.save(report, "workbench")


if __name__ == "__main__":
    main()
