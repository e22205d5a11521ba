"""The nightly job's steps, one at a time, as the capacity plan in infra/README.md needs them measured.

On a sample export (10,000 customers / 100,000 invoices by default), against one throwaway PostgreSQL cluster
(tests/pgserver.py) and one SeaweedFS server (tests/s3server.py), each step runs as the real `portal` command in
its own process, wrapped in `flock /tmp/bench.lock` (the machine is shared: one measurement at a time) and
`/usr/bin/time -v`:

  import      `portal import EXPORT`                                  into an empty database
  build       `portal build EXPORT --shard 0/1 --skip-import`         into an empty folder, as on a new task
  publish     `portal publish --shard 0/1`                             into an empty bucket: every object
  reconcile   `portal publish --reconcile 1`                           (no main manifest yet: a bucket scan)
  re*         the same steps again with the same export: nothing changed, nothing uploaded
  next-*      the same rows a day later (export.json's as_of + 1 day): what a quiet night changes

For each: wall seconds, the peak resident set of the largest single process (`time -v`, what a process-level
limit sees) and the peak of the whole process tree's proportional set size (render workers share pages with
their parent: PSS adds them up once; sampled every 0.2 s; what a task's memory limit must hold). Each step is
repeated `--repeat` times; the spread is printed. The figures are seconds on this machine, not ratios: they feed
the arithmetic of the capacity plan, which says how they were taken.

    python bench/shard.py [--customers 10000] [--invoices 100000] [--repeat 2] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.export.sample import write_sample  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402

AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
SECRET = "bench-secret-key-0123456789abcdef"
LOCK = "/tmp/bench.lock"
PORTAL = str(Path(sys.executable).parent / "portal")


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (a pool may start its processes from another thread)."""
    found = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as handle:
                found.extend(int(p) for p in handle.read().split())
        except OSError:
            pass
    return found


def _tree_pss_kib(root: int) -> int:
    """PSS of `root` and all its descendants, in KiB (0 for processes that are gone)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(_children(pid))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                match = re.search(r"^Pss:\s+(\d+) kB", handle.read(), re.MULTILINE)
            total += int(match.group(1)) if match else 0
        except OSError:
            pass
    return total


def measure(label: str, command: list[str], env: dict[str, str]) -> dict:
    """Run `command` under flock and time -v; sample the tree's PSS. Raises on a non-zero exit."""
    wrapped = ["/usr/bin/flock", LOCK, "/usr/bin/time", "-v", *command]
    process = subprocess.Popen(wrapped, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_pss_kib(process.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{label}: {' '.join(command)} exited {process.returncode}\n{out}\n{err[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", err)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", err).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", err).group(1))
    row = {"step": label, "seconds": round(hours * 3600 + minutes * 60 + seconds, 2),
           "cpu_seconds": round(user + system, 1), "max_rss_mib": round(rss / 1024),
           "tree_pss_mib": round(peak[0] / 1024), "output": out.strip().splitlines()[-1:]}
    print(f"  {label:<10} {row['seconds']:>8.1f} s  cpu {row['cpu_seconds']:>7.1f} s  "
          f"max RSS {row['max_rss_mib']:>6} MiB  tree PSS {row['tree_pss_mib']:>6} MiB  {row['output']}", flush=True)
    return row


def set_as_of(export: Path, moment: datetime) -> None:
    (export / "export.json").write_text(json.dumps({"as_of": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}) + "\n")


def folder_size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--invoices", type=int, default=100000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: one per CPU)")
    args = parser.parse_args()
    if not Path(PORTAL).exists() or not Path("/usr/bin/flock").exists() or not Path("/usr/bin/time").exists():
        raise SystemExit(f"needs {PORTAL}, flock and /usr/bin/time")

    # A SIGTERM (timeout, kill) unwinds like an exception, so the servers below are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="bench-shard."))
    postgres = seaweed = None
    rows: list[dict] = []
    try:
        export = work / "export"
        write_sample(export, args.customers, args.invoices, seed=7, as_of=AS_OF)
        postgres = PostgresServer().start()
        seaweed = SeaweedS3().start()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PORTAL_"))}
        env = {**base, **seaweed.env(), "PORTAL_SECRET_KEY": SECRET, "PORTAL_SITE_URL": "https://portal.example.com"}
        if args.workers:
            env["PORTAL_BUILD_WORKERS"] = str(args.workers)
        print(f"{args.customers} customers, {args.invoices} invoices; {os.cpu_count()} CPUs shared with "
              "PostgreSQL, SeaweedFS and other users of the machine", flush=True)
        for run in range(args.repeat):
            bucket = seaweed.create_bucket(f"site-{run}")
            env["PORTAL_TARGET"] = f"s3://{bucket}"
            env["PORTAL_DATABASE_URL"] = postgres.create_database(f"run{run}")
            print(f"run {run + 1}:", flush=True)
            set_as_of(export, AS_OF)
            for night, label in (("first", ""), ("same", "re"), ("next", "next-")):
                if night == "next":
                    set_as_of(export, AS_OF + timedelta(days=1))  # the same rows, a day later
                rows.append(measure(f"{label}import", [PORTAL, "import", str(export)], env))
                site = work / f"site-{run}-{night}"  # a new task's empty folder every night
                env["PORTAL_BUILD_DIR"] = str(site)
                rows.append(measure(f"{label}build",
                                    [PORTAL, "build", str(export), "--shard", "0/1", "--skip-import"], env))
                rows.append(measure(f"{label}publish", [PORTAL, "publish", "--shard", "0/1"], env))
                rows.append(measure(f"{label}reconcile", [PORTAL, "publish", "--reconcile", "1"], env))
                files, size = folder_size(site)
                rows[-1]["site_files"], rows[-1]["site_bytes"] = files, size
                print(f"  site folder: {files} files, {size / 2**20:.0f} MiB", flush=True)
                shutil.rmtree(site)
    finally:
        summary(rows, args)
        for server in (seaweed, postgres):
            if server is not None:
                server.stop()
        shutil.rmtree(work, ignore_errors=True)


def summary(rows: list[dict], args: argparse.Namespace) -> None:
    if not rows:
        return
    print(f"\n{'step':<10} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'max RSS MiB':>12} "
          f"{'tree PSS MiB':>13}")
    for step in dict.fromkeys(r["step"] for r in rows):
        these = [r for r in rows if r["step"] == step]
        seconds = [r["seconds"] for r in these]
        print(f"{step:<10} {len(these):>4} {statistics.median(seconds):>9.1f} {min(seconds):>7.1f} "
              f"{max(seconds):>7.1f} {max(r['max_rss_mib'] for r in these):>12} "
              f"{max(r['tree_pss_mib'] for r in these):>13}")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"shard-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"customers": args.customers, "invoices": args.invoices, "cpus": os.cpu_count(),
                               "rows": rows}, indent=2))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
