"""Benchmark: the emailed-link route under gunicorn, next to a bare Flask ceiling, in one run.

    python bench/webhook_load.py [--seconds 10] [--connections 8] [--tokens 2000] [--exact 2000]

Both sides run as `gunicorn` with 2 sync workers on 127.0.0.1 and are loaded by wrk with the same Lua script,
which cycles through many distinct signed links:
- webhook: `webhook:create_app()` on SQLite (WAL): verify the token, check the key version and the invoice,
  INSERT one `link_opened` row, commit, answer 303;
- ceiling: a bare Flask route that answers the same 303 without verifying or recording anything.
It prints requests/s, p50 and p99 per side and their ratio (target: webhook >= 0.5 x ceiling on SQLite).

Receipts must match responses. wrk stops at a deadline with requests in flight (the server may record a row
whose 303 wrk never reads), so after the timed run a bounded Python client sends exactly `--exact` requests
to a fresh database and the benchmark checks that `link_opened` rows == 303 responses, exactly.
Results also go to bench/results/webhook_load.json (git-ignored). Needs wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.tools import find, need  # noqa: E402

LUA = r"""
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  counter = tid * 7919
  c303 = 0
  other = 0
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/l/" .. tokens[(counter % #tokens) + 1])
end
function response(status, headers, body)
  if status == 303 then c303 = c303 + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local n303, nother = 0, 0
  for _, t in ipairs(threads) do
    n303 = n303 + t:get("c303")
    nother = nother + t:get("other")
  end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "c303": %d, "other": %d, ' ..
    '"errors": %d}\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    n303, nother, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def ceiling_app():
    """The ceiling: the same 303 from a bare Flask route, with no verification and no database."""
    from flask import Flask, redirect

    app = Flask("ceiling")
    target = "http://127.0.0.1:9/c/abcdefghijklmnopqrstuvwxyz/index.html"

    @app.get("/l/<token>")
    def link(token: str):
        return redirect(target, 303)

    @app.get("/healthz")
    def healthz():
        return "ok\n"

    return app


def prepare(folder: Path, tokens: int) -> tuple[dict[str, str], list[str]]:
    """A migrated SQLite store holding a sample export, the environment for gunicorn, and signed links."""
    import portal.balances.stored  # noqa: F401 - the derived tables follow every change (portal/store/derived.py)
    import portal.staff.receiptlines  # noqa: F401 - the receipt lines too
    from portal.core.config import load_settings
    from portal.core.signing import Signer
    from portal.export.reader import read_export
    from portal.export.sample import write_sample
    from portal.store.database import Store

    database = f"sqlite:///{folder / 'portal.db'}"
    settings = load_settings(env={}, config_file=None, database_url=database,
                             secret_key="bench-secret-0123456789abcdef", site_url="http://127.0.0.1:9")
    export = write_sample(folder / "export", customers=200, invoices=1000, seed=11)
    ledger = read_export(export, settings)
    store = Store(database)
    store.migrate()
    store.import_snapshot(ledger)
    store.close()
    signer = Signer(settings)
    contacts = list(ledger.contacts)
    by_customer: dict[str, list[str]] = {}
    for invoice in ledger.invoices.values():
        by_customer.setdefault(invoice.customer_id, []).append(invoice.invoice_id)
    links = []
    n = 0
    while len(links) < tokens:
        contact = contacts[n % len(contacts)]
        choices = ["", *by_customer.get(contact.customer_id, [])]
        links.append(signer.link_token(contact.customer_id, contact.contact_id, choices[n % len(choices)], 1))
        n += 1
    env = {"PORTAL_DATABASE_URL": database, "PORTAL_SECRET_KEY": settings.secret_key,
           "PORTAL_SITE_URL": settings.site_url, "PORTAL_MAIL_URL": f"outbox:{folder / 'outbox'}",
           # One client address sends everything: measure the route, not the limiter's verdicts (it still runs).
           "WEBHOOK_RATE_LIMIT_IP": "10000000/60", "WEBHOOK_RATE_LIMIT_TOKEN": "10000000/60"}
    return env, links


def count_rows(database: str) -> int:
    from portal.store.database import Store

    store = Store(database)
    try:
        return store.count_events(kind="link_opened")
    finally:
        store.close()


def server_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of a gunicorn master and its workers, from /proc (Linux).

    CPU time per request is the figure that other load on a shared machine disturbs least: it measures
    the work each request costs, where requests/s also measures how much CPU the server was given."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if master_pid in (pid, ppid):
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def run_wrk(url: str, script: Path, tokens_file: Path, seconds: int, connections: int, master_pid: int) -> dict:
    cpu_before = server_cpu_seconds(master_pid)
    command = [str(need("wrk")), "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                            env={"BENCH_TOKENS": str(tokens_file), "PATH": "/usr/bin:/bin"})
    match = re.search(r"^BENCH (\{.*\})$", answer.stdout, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{answer.stdout}\n{answer.stderr}")
    data = json.loads(match.group(1))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["cpu_s"] = server_cpu_seconds(master_pid) - cpu_before
    return data


def _combine(runs: list[dict]) -> dict:
    """Totals over the rounds; latency percentiles of the worst round (wrk reports them per run)."""
    total = {key: sum(r[key] for r in runs) for key in ("requests", "duration_us", "c303", "other", "errors",
                                                        "cpu_s")}
    total["rps"] = total["requests"] / (total["duration_us"] / 1e6)
    total["cpu_us_per_request"] = total["cpu_s"] / total["requests"] * 1e6
    total["p50_us"] = max(r["p50_us"] for r in runs)
    total["p99_us"] = max(r["p99_us"] for r in runs)
    total["rounds_rps"] = [round(r["rps"]) for r in runs]
    return total


def exact_check(url: str, links: list[str], count: int, threads: int = 8) -> Counter:
    import requests

    local = threading.local()

    def fetch(token: str) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        return session.get(f"{url}/l/{token}", allow_redirects=False, timeout=30).status_code

    with ThreadPoolExecutor(threads) as pool:
        return Counter(pool.map(fetch, [links[n % len(links)] for n in range(count)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk time per side, split over the rounds")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per side")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=2000, help="distinct signed links to cycle through")
    parser.add_argument("--exact", type=int, default=2000, help="requests of the exact receipts check")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if find("wrk") is None:
        print("wrk is not installed (apt-get install wrk; make test installs it)", file=sys.stderr)
        return 2
    from tests.gunicorn_server import GunicornServer

    folder = Path(tempfile.mkdtemp(prefix="bench-webhook."))
    try:
        env, links = prepare(folder, args.tokens)
        tokens_file = folder / "tokens.txt"
        tokens_file.write_text("\n".join(links) + "\n")
        script = folder / "links.lua"
        script.write_text(LUA)
        log = folder / "gunicorn.log"
        sides = {"webhook": ("webhook:create_app()", folder, env),
                 "ceiling": ("webhook_load:ceiling_app()", HERE, {})}
        servers = {name: GunicornServer(app, side_env, log, workers=args.workers, chdir=chdir)
                   for name, (app, chdir, side_env) in sides.items()}
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        try:
            for server in servers.values():
                server.start()
            # Alternate the sides in short rounds: on a shared machine, load from elsewhere then hits both.
            for _ in range(args.rounds):
                for name, server in servers.items():
                    runs[name].append(run_wrk(server.url, script, tokens_file, args.seconds // args.rounds,
                                              args.connections, server.process.pid))
        finally:
            for server in servers.values():
                server.stop()
        results = {name: _combine(side_runs) for name, side_runs in runs.items()}
        rows = count_rows(env["PORTAL_DATABASE_URL"])
        results["webhook"]["rows"] = rows
        # Requests in flight at each wrk deadline may be recorded without wrk reading their 303.
        in_flight = args.connections * args.rounds
        assert results["webhook"]["c303"] <= rows <= results["webhook"]["c303"] + in_flight, results["webhook"]

        # The exact check, on an emptied events table.
        from sqlalchemy import delete

        from portal.store import tables
        from portal.store.database import Store

        store = Store(env["PORTAL_DATABASE_URL"])
        with store.begin() as conn:
            conn.execute(delete(tables.events))
        store.close()
        with GunicornServer("webhook:create_app()", env, log, workers=args.workers, chdir=folder) as server:
            codes = exact_check(server.url, links, args.exact)
        exact_rows = count_rows(env["PORTAL_DATABASE_URL"])
        exact_ok = codes == Counter({303: args.exact}) and exact_rows == args.exact

        web, top = results["webhook"], results["ceiling"]
        ratio = web["rps"] / top["rps"]
        print(f"gunicorn {args.workers} sync workers, wrk -t1 -c{args.connections}, {args.seconds} s per side in "
              f"{args.rounds} alternating rounds, {args.tokens} distinct links, SQLite (WAL), default logging")
        print(f"{'side':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10} {'303s':>8} {'other':>6} "
              f"{'errors':>6} {'rows':>8}")
        for name, r in results.items():
            print(f"{name:<9} {r['rps']:>9.0f} {r['p50_us'] / 1000:>8.2f} {r['p99_us'] / 1000:>8.2f} "
                  f"{r['cpu_us_per_request']:>10.0f} {r['c303']:>8} {r['other']:>6} {r['errors']:>6} "
                  f"{r.get('rows', '-'):>8}   rounds {r['rounds_rps']}")
        cpu_ratio = top["cpu_us_per_request"] / web["cpu_us_per_request"]
        print(f"ratio webhook/ceiling: {ratio:.2f} in requests/s (target >= 0.5), {cpu_ratio:.2f} in server CPU "
              "per request (less sensitive to other load on the machine)")
        print(f"exact check: {args.exact} requests -> {dict(codes)}, link_opened rows {exact_rows}: "
              f"{'OK' if exact_ok else 'MISMATCH'}")
        out = REPO / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "webhook_load.json").write_text(json.dumps({
            "when": datetime.now(UTC).isoformat(), "args": vars(args), "results": results, "ratio": ratio,
            "cpu_ratio": cpu_ratio, "load_average": os.getloadavg(),
            "exact": {"requests": args.exact, "codes": dict(codes), "rows": exact_rows, "ok": exact_ok}}, indent=2))
        return 0 if exact_ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
