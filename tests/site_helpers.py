"""Helpers shared by the build and publish tests and the webhook's document tests: editing an export, rebuilding,
and checking what a bucket or folder holds against the build's manifest."""

from __future__ import annotations

import csv
import hashlib
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

from portal.build.pipeline import build
from portal.publish.manifest import JOURNAL, REMOTE_MANIFEST, Manifest, decode_manifest
from portal.store.database import Store

# The browser shows these; every other document type downloads (the same table as the folder target's test in
# tests/webhook/customer/test_files.py).
SHOWN = {".pdf": "inline", ".png": "inline", ".jpg": "inline", ".xml": "attachment", ".txt": "attachment",
         ".csv": "attachment", ".zip": "attachment", ".tif": "attachment", ".docx": "attachment"}


def rewrite_csv(path: Path, change) -> None:
    """Apply `change` to every row of an export's CSV file; a row it returns None for is dropped."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows = [r for r in (change(dict(r)) for r in rows) if r is not None]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def rebuild(export_dir: Path, out: Path, settings) -> Manifest:
    build(export_dir, out, settings)
    return Manifest.load(out)


def change_one_invoice(export_dir: Path) -> str:
    """Lower the first open invoice's balance by 1.00 in invoices.csv; return its customer id."""
    path = export_dir / "invoices.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    row = next(r for r in rows if Decimal(r["balance"]) > 1)
    row["balance"] = str(Decimal(row["balance"]) - Decimal("1.00"))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return row["customer_id"]


def revoke(settings, customer_id: str) -> None:
    store = Store(settings.database_url)
    try:
        store.revoke(customer_id)
    finally:
        store.close()


def listing(client, bucket: str, prefix: str) -> dict[str, str]:
    """Every object under the prefix: relative key -> ETag."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", ()):
            found[obj["Key"][len(prefix) + 1:]] = obj["ETag"]
    return found


def assert_bucket_matches(client, bucket: str, prefix: str, out: Path, foreign: set[str] = frozenset()) -> None:
    """The bucket holds exactly the build's files, byte for byte, plus the target manifest and nothing else."""
    manifest = Manifest.load(out)
    objects = listing(client, bucket, prefix)
    site_objects = set(objects) - {REMOTE_MANIFEST, JOURNAL} - set(foreign)
    assert site_objects == set(manifest.files)
    for path, (sha, _size, _customer) in manifest.files.items():
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/{path}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha, path
    assert JOURNAL not in objects  # a finished run leaves no journal
    remote = client.get_object(Bucket=bucket, Key=f"{prefix}/{REMOTE_MANIFEST}")["Body"].read()
    assert decode_manifest(remote) == {p: v[0] for p, v in manifest.files.items()}


def assert_folder_matches(target: Path, out: Path, foreign: set[str] = frozenset()) -> None:
    manifest = Manifest.load(out)
    files = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert files - {REMOTE_MANIFEST} - set(foreign) == set(manifest.files)
    for path, (sha, _size, _customer) in manifest.files.items():
        assert hashlib.sha256((target / path).read_bytes()).hexdigest() == sha, path


def get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)
