"""Publishing the built site: to a real S3 server (SeaweedFS), through a faulty proxy, and to a folder.

SeaweedFS checks SigV4 and presigned-URL signatures and expiry (moto does not), so the security tests run
against it. The S3 tests skip when the `weed` binary is missing, unless PORTAL_REQUIRE_S3=1 (CI), which
turns the skip into a failure (fixtures: tests/publish/conftest.py).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from botocore.retries.standard import ExponentialBackoff

from portal.publish import s3 as s3target
from portal.publish.manifest import JOURNAL, MANIFEST, REMOTE_MANIFEST, Manifest
from portal.publish.objects import ASSET_CACHE, PAGE_CACHE, PRIVATE_CACHE, PublishError
from portal.publish.publisher import publish
from portal.publish.targets import FolderTarget
from tests.conftest import make_settings
from tests.faultproxy import FaultProxy
from tests.s3server import SeaweedS3
from tests.site_helpers import (
    assert_bucket_matches,
    assert_folder_matches,
    change_one_invoice,
    listing,
    rebuild,
    revoke,
)

REPO = Path(__file__).resolve().parents[2]


# --- S3: the normal cases ---------------------------------------------------------------------------------


def test_full_publish_uploads_every_file_with_its_headers(site, bucket: str, aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    calls: list[tuple[int, int]] = []

    result = publish(settings, out, progress=lambda done, total: calls.append((done, total)))

    files = Manifest.load(out).files
    assert (result.uploaded, result.unchanged, result.deleted) == (len(files), 0, 0)
    assert result.bytes == sum(size for _sha, size, _cid in files.values())
    assert f"{len(files)} uploaded" in result.summary()
    client = aws_env.client()
    assert_bucket_matches(client, bucket, "site", out)
    assert calls[0] == (0, len(files)) and calls[-1] == (len(files), len(files))
    assert [done for done, _total in calls] == sorted(done for done, _total in calls)

    expected = {"c/": ("text/html; charset=utf-8", PAGE_CACHE), "assets/": (None, ASSET_CACHE),
                "docs/": ("application/pdf", PRIVATE_CACHE)}
    for path, (sha, _size, _cid) in files.items():
        kind = next(k for k in expected if path.startswith(k))
        head = client.head_object(Bucket=bucket, Key=f"site/{path}")
        content_type, cache = expected[kind]
        assert head["CacheControl"] == cache, path
        assert head["Metadata"]["sha256"] == sha
        if content_type:
            assert head["ContentType"] == content_type, path
        elif path.endswith(".css"):
            assert head["ContentType"] == "text/css; charset=utf-8"
    # Pages reach documents through the webhook's /d/ route, never through a bucket address.
    for path in files:
        if path.endswith(".html"):
            html = (out / path).read_text(encoding="utf-8")
            assert "docs/" not in html and bucket not in html and aws_env.endpoint not in html


def test_publish_of_an_unchanged_build_uploads_nothing(site, bucket: str, aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    before = listing(aws_env.client(), bucket, "site")

    result = publish(settings, out)

    assert (result.uploaded, result.deleted, result.unchanged) == (0, 0, len(Manifest.load(out).files))
    assert listing(aws_env.client(), bucket, "site") == before


def test_dry_run_reports_and_changes_nothing(site, bucket: str, aws_env: SeaweedS3):
    settings, out = site
    result = publish(settings.replace(target=f"s3://{bucket}/site"), out, dry_run=True)

    assert result.uploaded == len(Manifest.load(out).files) and result.dry_run
    assert "dry run: would upload" in result.summary()
    assert listing(aws_env.client(), bucket, "site") == {}


def test_one_invoice_change_uploads_only_that_customers_changed_files(site, export_dir: Path, bucket: str,
                                                                       aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    before_manifest = Manifest.load(out).files
    client = aws_env.client()
    before = listing(client, bucket, "site")

    customer = change_one_invoice(export_dir)
    after_manifest = rebuild(export_dir, out, settings).files
    result = publish(settings, out)

    changed = {p for p, v in after_manifest.items() if before_manifest.get(p, (None,))[0] != v[0]}
    gone = set(before_manifest) - set(after_manifest)  # e.g. the old statement PDF, named by its hash
    assert changed and {after_manifest[p][2] for p in changed} == {customer}
    assert (result.uploaded, result.deleted) == (len(changed), len(gone))
    after = listing(client, bucket, "site")
    rewritten = {p for p in after if p in before and after[p] != before[p]} | (set(after) - set(before))
    assert rewritten - {REMOTE_MANIFEST} == changed
    assert_bucket_matches(client, bucket, "site", out)


def test_files_the_build_no_longer_has_are_deleted_and_nothing_else(site, export_dir: Path, bucket: str,
                                                                      aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    client = aws_env.client()
    client.put_object(Bucket=bucket, Key="site/keep-me.txt", Body=b"not part of the site")
    publish(settings, out)
    old = Manifest.load(out)

    revoke(settings, "C00002")  # the customer's pages move to a new key; the old ones must go
    new = rebuild(export_dir, out, settings)
    result = publish(settings, out)

    gone = set(old.files) - set(new.files)
    old_key = old.customers["C00002"]["key"]
    assert gone and all(old_key in p for p in gone)
    assert result.deleted == len(gone)
    assert not any(old_key in key for key in listing(client, bucket, "site"))
    assert_bucket_matches(client, bucket, "site", out, foreign={"keep-me.txt"})


def test_lost_target_manifest_is_rebuilt_from_object_metadata(site, bucket: str, aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}")  # no prefix: the site at the bucket's root
    publish(settings, out)
    client = aws_env.client()
    client.delete_object(Bucket=bucket, Key=REMOTE_MANIFEST)
    client.put_object(Bucket=bucket, Key=JOURNAL, Body=b"unreadable")

    nothing = publish(settings, out)  # every object checked by its sha256 metadata: all fine

    assert (nothing.uploaded, nothing.deleted) == (0, 0)
    assert JOURNAL not in listing_root(client, bucket) and REMOTE_MANIFEST in listing_root(client, bucket)

    client.delete_object(Bucket=bucket, Key=REMOTE_MANIFEST)
    client.put_object(Bucket=bucket, Key="c/stale/index.html", Body=b"a page from an older publish")
    page = next(p for p in Manifest.load(out).files if p.endswith("index.html"))
    client.put_object(Bucket=bucket, Key=page, Body=b"tampered", Metadata={"sha256": "0" * 64})

    result = publish(settings, out)

    assert (result.uploaded, result.deleted) == (1, 1)
    assert "c/stale/index.html" not in listing_root(client, bucket)
    assert client.get_object(Bucket=bucket, Key=page)["Body"].read() == (out / page).read_bytes()


def listing_root(client, bucket: str) -> dict[str, str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"]: obj["ETag"] for page in pages for obj in page.get("Contents", ())}


# --- S3: failures and recovery ------------------------------------------------------------------------------


@pytest.mark.parametrize("botocore_attempts", [None, 1], ids=["botocore+own-retries", "own-retries-only"])
def test_publish_completes_through_throttling_errors_and_dropped_connections(
        site, export_dir: Path, bucket: str, aws_env: SeaweedS3, monkeypatch, botocore_attempts):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    if botocore_attempts:  # prove that our own loop alone copes, without botocore's retries
        monkeypatch.setattr(s3target, "BOTO_MAX_ATTEMPTS", botocore_attempts)
    # Shorter waits keep the test quick; the shape of the backoff is unchanged.
    monkeypatch.setattr(s3target, "BACKOFF_BASE", 0.05)
    botocore_delay = ExponentialBackoff.delay_amount
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, ctx: botocore_delay(self, ctx) / 20)
    proxy = FaultProxy(aws_env.endpoint, slowdown=0.12, error=0.08, drop=0.08, seed=7).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    try:
        publish(settings, out)
        revoke(settings, "C00001")  # a second publish with deletions, also through the faults
        rebuild(export_dir, out, settings)
        result = publish(settings, out)
    finally:
        proxy.stop()

    assert result.uploaded and result.deleted
    assert proxy.counts["slowdown"] > 5 and proxy.counts["error"] > 5
    assert proxy.counts["dropped before forwarding"] + proxy.counts["dropped after forwarding"] > 5
    assert_bucket_matches(aws_env.client(), bucket, "site", out)  # checked on the server, not via the proxy


KILLER = textwrap.dedent("""
    import os, signal, sys
    from portal.core.config import load_settings
    from portal.publish.publisher import publish

    def progress(done, total):
        if done >= int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all, like a lost machine

    publish(load_settings(), sys.argv[1], progress=progress, workers=2)
""")


def publish_killed_after(settings, out: Path, uploads: int) -> None:
    env = {**os.environ, "PORTAL_TARGET": settings.target, "PORTAL_DATABASE_URL": settings.database_url,
           "PORTAL_SECRET_KEY": settings.secret_key, "PYTHONPATH": str(REPO)}
    process = subprocess.run([sys.executable, "-c", KILLER, str(out), str(uploads)], env=env, cwd=out.parent,
                             capture_output=True, timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()


def test_publish_killed_half_way_converges_when_run_again(site, export_dir: Path, bucket: str,
                                                          aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    change_one_invoice(export_dir)
    revoke(settings, "C00003")
    rebuild(export_dir, out, settings)

    publish_killed_after(settings, out, uploads=3)
    client = aws_env.client()
    assert JOURNAL in listing(client, bucket, "site")  # the run was really cut short

    result = publish(settings, out)
    assert result.uploaded < len(Manifest.load(out).files)
    assert_bucket_matches(client, bucket, "site", out)


def test_killed_publish_followed_by_another_build_leaves_no_orphans(site, export_dir: Path, bucket: str,
                                                                   aws_env: SeaweedS3):
    """Pages uploaded by a killed run that the next build no longer has (here: a key revoked twice) go."""
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    revoke(settings, "C00004")
    middle_key = rebuild(export_dir, out, settings).customers["C00004"]["key"]
    publish_killed_after(settings, out, uploads=4)
    client = aws_env.client()
    assert any(middle_key in key for key in listing(client, bucket, "site"))

    revoke(settings, "C00004")
    rebuild(export_dir, out, settings)
    publish(settings, out)

    assert not any(middle_key in key for key in listing(client, bucket, "site"))
    assert_bucket_matches(client, bucket, "site", out)


def test_a_build_that_is_missing_is_refused(tmp_path: Path):
    settings = make_settings(f"sqlite:///{tmp_path / 'p.db'}", target=str(tmp_path / "public"))
    with pytest.raises(PublishError, match="no build found"):
        publish(settings, tmp_path / "build")


# --- folder targets ---------------------------------------------------------------------------------------


def test_folder_target_copies_only_changes_and_removes_stale_files(site, export_dir: Path, tmp_path: Path):
    settings, out = site
    target = tmp_path / "public"
    settings = settings.replace(target=str(target))
    target.mkdir()
    (target / "README.txt").write_text("not part of the site")

    first = publish(settings, out)
    assert first.uploaded == len(Manifest.load(out).files)
    assert_folder_matches(target, out, foreign={"README.txt"})
    assert publish(settings, out).uploaded == 0

    old = Manifest.load(out)
    customer = change_one_invoice(export_dir)
    revoke(settings, "C00002")
    new = rebuild(export_dir, out, settings)
    result = publish(settings, out)

    changed = {p for p, v in new.files.items() if old.files.get(p, (None,))[0] != v[0]}
    assert {new.files[p][2] for p in changed} == {customer, "C00002"}
    assert (result.uploaded, result.deleted) == (len(changed), len(set(old.files) - set(new.files)))
    assert_folder_matches(target, out, foreign={"README.txt"})
    assert not (target / "c" / old.customers["C00002"]["key"]).exists()  # emptied folders go too
    assert not any(p.name.startswith(".") for p in target.rglob("*") if p.name != REMOTE_MANIFEST)


def test_folder_publish_failing_half_way_deletes_nothing_and_converges(site, export_dir: Path, tmp_path: Path,
                                                                       monkeypatch):
    settings, out = site
    target = tmp_path / "public"
    settings = settings.replace(target=str(target))
    publish(settings, out)
    old = Manifest.load(out)
    revoke(settings, "C00005")
    rebuild(export_dir, out, settings)
    real_put, calls = FolderTarget.put, itertools.count(1)

    def failing_put(self, item):
        if next(calls) > 3:
            raise OSError("disk full")
        real_put(self, item)

    monkeypatch.setattr(FolderTarget, "put", failing_put)
    with pytest.raises(PublishError, match="disk full; nothing was deleted"):
        publish(settings, out)
    assert all((target / p).is_file() for p in old.files)  # every old file still served
    assert (target / JOURNAL).is_file()

    monkeypatch.setattr(FolderTarget, "put", real_put)
    publish(settings, out)
    assert_folder_matches(target, out)
    assert not (target / JOURNAL).exists()


def test_target_that_is_the_build_folder_is_a_no_op(site):
    settings, out = site
    result = publish(settings.replace(target=str(out)), out)
    assert result.uploaded == 0 and "nothing to publish" in result.summary()


def test_target_inside_the_build_folder_is_refused(site):
    settings, out = site
    with pytest.raises(PublishError, match="must not be inside"):
        publish(settings.replace(target=str(out / "public")), out)


def test_publish_refuses_a_file_changed_since_the_build(site, tmp_path: Path):
    settings, out = site
    page = next(p for p in Manifest.load(out).files if p.endswith("index.html"))
    (out / page).write_text("changed by hand")
    with pytest.raises(PublishError, match=f"changed since the build.*{MANIFEST}"):
        publish(settings.replace(target=str(tmp_path / "public")), out)
