"""Publish benchmark: `portal publish` against `aws s3 sync`, side by side on one SeaweedFS server, one run.

The site is built from `portal sample-data` (10,000 customers / 100,000 invoices by default). Both tools get
the same tree, the same server and the same concurrency, each into its own bucket, in three scenarios:

(a) full upload into an empty bucket;
(b) after a full re-render with no content change: every file rewritten with identical bytes, so every
    mtime is new (what a generator that rewrites everything, or a fresh CI checkout, produces);
(c) after 1% of the invoices changed (balance lowered by 1.00) and an incremental rebuild.

It prints objects uploaded and seconds for each tool and the time ratio ours/aws (target <= 1.0; in (b)
ours must upload 0 objects). The machine is shared and noisy: the ratios matter more than the seconds.

    python bench/publish.py [--customers 10000] [--invoices 100000] [--workers 16]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
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
from portal.build.pipeline import build  # noqa: E402
from portal.core.config import load_settings  # noqa: E402
from portal.export.sample import write_sample  # noqa: E402
from portal.publish.manifest import Manifest  # noqa: E402
from portal.publish.publisher import publish  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402
from tests.tools import find, need  # noqa: E402

AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
SECRET = "bench-secret-key-0123456789abcdef"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def ours(settings, site: Path, workers: int) -> tuple[float, int]:
    seconds, result = timed(lambda: publish(settings, site, workers=workers))
    print(f"  ours: {result.summary()}", flush=True)
    return seconds, result.uploaded


def aws_sync(site: Path, bucket: str, env: dict[str, str]) -> tuple[float, int]:
    # Dot-files (the build's manifest and lock) are not site objects; --delete matches what ours does.
    command = [str(need("aws")), "s3", "sync", str(site), f"s3://{bucket}/site", "--delete", "--no-progress",
               "--exclude", ".*", "--exclude", "*/.*"]
    seconds, done = timed(lambda: subprocess.run(command, env=env, capture_output=True, text=True))
    if done.returncode != 0:
        raise SystemExit(f"aws s3 sync failed ({done.returncode}): {done.stderr[-2000:]}")
    uploaded = sum(1 for line in done.stdout.splitlines() if line.startswith("upload:"))
    print(f"  aws:  {uploaded} uploaded in {seconds:.1f} s", flush=True)
    return seconds, uploaded


def count_objects(client, bucket: str) -> int:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="site/")
    return sum(1 for page in pages for obj in page.get("Contents", ()) if "/." not in obj["Key"])


def rewrite_identically(site: Path) -> int:
    """Every file written again with the same bytes: new mtimes, same content."""
    count = 0
    for path in site.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            path.write_bytes(path.read_bytes())
            count += 1
    return count


def change_invoices(export: Path, share: float) -> int:
    """Lower the balance of every 1/share-th invoice with a balance above 1.00 by 1.00 (Decimal, not float)."""
    path = export / "invoices.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    step, changed = round(1 / share), 0
    for index, row in enumerate(rows):
        if index % step == 0 and Decimal(row["balance"]) > 1:
            row["balance"] = str(Decimal(row["balance"]) - Decimal("1.00"))
            changed += 1
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return changed


def report(rows: list[dict], args: argparse.Namespace, files: int) -> None:
    print(f"\n{args.customers} customers, {args.invoices} invoices, {files} files; "
          f"{args.workers} concurrent requests each; {os.cpu_count()} CPUs shared with SeaweedFS")
    print(f"{'scenario':<30} {'ours objects':>12} {'ours s':>8} {'aws objects':>12} {'aws s':>8} {'ours/aws':>9}")
    for row in rows:
        print(f"{row['scenario']:<30} {row['ours_objects']:>12} {row['ours_s']:>8.1f} {row['aws_objects']:>12} "
              f"{row['aws_s']:>8.1f} {row['ratio']:>9.2f}")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"publish-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"customers": args.customers, "invoices": args.invoices, "files": files,
                               "workers": args.workers, "rows": rows}, indent=2))
    print(f"\nresults: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--invoices", type=int, default=100000)
    parser.add_argument("--workers", type=int, default=16, help="concurrent requests, for both tools")
    parser.add_argument("--build-workers", type=int, default=None, help="render processes (default: CPUs)")
    args = parser.parse_args()
    if find("aws") is None:
        raise SystemExit(f"the aws CLI is not installed: {sys.executable} -m pip install awscli")

    work = Path(tempfile.mkdtemp(prefix="bench-publish."))
    server = None
    try:
        export, site = work / "export", work / "site"
        write_sample(export, args.customers, args.invoices, seed=7, as_of=AS_OF)
        settings = load_settings(env={}, config_file=None, database_url=f"sqlite:///{work / 'portal.db'}",
                                 secret_key=SECRET, target="s3://ours/site")
        seconds, _ = timed(lambda: build(export, site, settings, workers=args.build_workers))
        files = len(Manifest.load(site).files)
        size = sum(v[1] for v in Manifest.load(site).files.values())
        print(f"built {args.customers} customers / {args.invoices} invoices: {files} files, "
              f"{size / 1e6:.0f} MB in {seconds:.0f} s", flush=True)

        server = SeaweedS3().start()
        env = server.env()
        # The same concurrency for the aws CLI as for ours (its default is 10).
        Path(env["AWS_CONFIG_FILE"]).write_text(f"[default]\ns3 =\n  max_concurrent_requests = {args.workers}\n")
        os.environ.update(env)
        aws_env = {**os.environ, **env}
        client = server.client()
        for name in ("ours", "theirs"):
            server.create_bucket(name)

        rows = []

        def scenario(name: str) -> None:
            print(f"{name}:", flush=True)
            ours_s, ours_n = ours(settings, site, args.workers)
            aws_s, aws_n = aws_sync(site, "theirs", aws_env)
            counts = (count_objects(client, "ours"), count_objects(client, "theirs"))
            if counts != (files_now(), files_now()):
                print(f"  WARNING: objects in the buckets {counts}, files in the build {files_now()}")
            rows.append({"scenario": name, "ours_objects": ours_n, "ours_s": round(ours_s, 2),
                         "aws_objects": aws_n, "aws_s": round(aws_s, 2), "ratio": round(ours_s / aws_s, 3)})

        def files_now() -> int:
            return len(Manifest.load(site).files)

        try:
            scenario("(a) full upload")
            time.sleep(1.1)  # so the rewritten files are strictly newer than the uploaded objects
            rewrite_identically(site)
            scenario("(b) re-render, no change")
            changed = change_invoices(export, 0.01)
            seconds, result = timed(lambda: build(export, site, settings, workers=args.build_workers))
            print(f"changed {changed} invoices; rebuilt in {seconds:.0f} s: {result.summary()}", flush=True)
            scenario("(c) 1% of invoices changed")
        finally:
            report(rows, args, files)  # what was measured, even when a later step failed
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
