"""Publishing the built site: to a real S3 server (SeaweedFS), through a faulty proxy, and to a folder.

SeaweedFS checks SigV4 and presigned-URL signatures and expiry (moto does not), so the security tests run
against it. The S3 tests skip when the `weed` binary is missing, unless PORTAL_REQUIRE_S3=1 (CI), which
turns the skip into a failure.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.retries.standard import ExponentialBackoff

from portal.build.pipeline import MANIFEST, Manifest, build
from portal.export.reader import DOCUMENT_TYPES
from portal.publish import s3 as s3target
from portal.publish.publisher import (
    ASSET_CACHE,
    JOURNAL,
    PAGE_CACHE,
    PRIVATE_CACHE,
    REMOTE_MANIFEST,
    FolderTarget,
    LocalFile,
    PublishError,
    RemoteState,
    decode_manifest,
    is_site_path,
    make_plan,
    presign_document,
    publish,
)
from portal.store.database import Store
from tests.conftest import make_settings
from tests.faultproxy import FaultProxy
from tests.s3server import SeaweedS3, point_boto3_at, started_or_skipped

REPO = Path(__file__).resolve().parent.parent
_buckets = itertools.count(1)


# --- fixtures and helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3():
    yield from started_or_skipped()


@pytest.fixture
def aws_env(s3: SeaweedS3, monkeypatch) -> SeaweedS3:
    point_boto3_at(s3, monkeypatch)
    return s3


@pytest.fixture
def bucket(aws_env: SeaweedS3) -> str:
    return aws_env.create_bucket(f"pub-{os.getpid()}-{next(_buckets)}")


@pytest.fixture
def site(export_dir: Path, tmp_path: Path, monkeypatch):
    """A built site in tmp/build, and the settings that built it (target filled in by each test)."""
    monkeypatch.chdir(tmp_path)
    settings = make_settings(f"sqlite:///{tmp_path / 'portal.db'}")
    out = tmp_path / "build"
    build(export_dir, out, settings)
    return settings, out


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


# --- S3: private documents ---------------------------------------------------------------------------------


def test_presigned_document_url_works_and_expired_or_tampered_ones_are_refused(site, bucket: str,
                                                                              aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    docs = sorted(p for p in Manifest.load(out).files if p.startswith("docs/") and p.endswith(".pdf"))
    document, other = docs[0], docs[1]

    url = presign_document(settings, document, expires_in=300, filename="Invoice INV-1 (copy).pdf")
    status, body, headers = get(url)
    assert status == 200 and body == (out / document).read_bytes()
    assert "X-Amz-Signature=" in url and "filename" in headers.get("Content-Disposition", "")

    # The same signature for another customer's document: refused.
    assert get(url.replace(document, other))[0] == 403
    # A changed signature: refused.
    parts = urlparse(url)
    query = dict(parse_qsl(parts.query))
    query["X-Amz-Signature"] = query["X-Amz-Signature"][:-1] + ("0" if query["X-Amz-Signature"][-1] != "0" else "1")
    assert get(parts._replace(query=urlencode(query)).geturl())[0] == 403
    # A longer lifetime than the one signed: refused.
    query = dict(parse_qsl(parts.query), **{"X-Amz-Expires": "604800"})
    assert get(parts._replace(query=urlencode(query)).geturl())[0] == 403
    # Expired: refused.
    short = presign_document(settings, document, expires_in=1)
    time.sleep(2.2)
    assert get(short)[0] == 403
    # The objects themselves are not public.
    assert get(f"{aws_env.endpoint}/{bucket}/site/{document}")[0] in {401, 403}


# The browser shows these; every other document type downloads (the same table as the folder target's test in
# tests/webhook/customer/test_files.py).
SHOWN = {".pdf": "inline", ".png": "inline", ".jpg": "inline", ".xml": "attachment", ".txt": "attachment",
         ".csv": "attachment", ".zip": "attachment", ".tif": "attachment", ".docx": "attachment"}


def test_presigned_documents_download_unless_browsers_show_their_type(site, bucket: str, aws_env: SeaweedS3):
    """An .xml presigned `inline` opened in the browser, on the bucket's origin."""
    settings, _out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    client = aws_env.client()
    for extension, disposition in SHOWN.items():
        key = f"docs/{'k' * 26}/{'a' * 64}{extension}"
        client.put_object(Bucket=bucket, Key=f"site/{key}", Body=b"<?xml version='1.0'?><x/>",
                          ContentType=DOCUMENT_TYPES[extension])
        status, _, headers = get(presign_document(settings, key, filename=f"Delivery note{extension}"))
        assert status == 200
        assert headers["Content-Disposition"].startswith(f"{disposition};"), extension
        assert f"Delivery note{extension}" in headers["Content-Disposition"]


def test_presign_refuses_folder_targets_and_paths_outside_docs(site, aws_env: SeaweedS3):
    settings, _out = site
    with pytest.raises(PublishError, match="dev server"):
        presign_document(settings.replace(target="public"), "docs/k/x.pdf")
    s3_settings = settings.replace(target="s3://bucket/site")
    for key in ("c/key/index.html", "docs/../c/key/index.html", "docs/k/.manifest.json"):
        with pytest.raises(PublishError, match="only documents"):
            presign_document(s3_settings, key)


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


def test_missing_bucket_is_one_clear_error(site, aws_env: SeaweedS3):
    settings, out = site
    with pytest.raises(PublishError) as caught:
        publish(settings.replace(target="s3://no-such-bucket/site"), out)
    assert caught.value.message == (f"s3://no-such-bucket/site: bucket no-such-bucket does not exist "
                                    f"(at {aws_env.endpoint})")
    assert caught.value.exit_code != 0


def test_wrong_credentials_are_one_clear_error_and_nothing_is_deleted(site, export_dir: Path, bucket: str,
                                                                      aws_env: SeaweedS3, monkeypatch):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    before = listing(aws_env.client(), bucket, "site")
    revoke(settings, "C00001")  # the next publish would delete the old pages
    rebuild(export_dir, out, settings)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(PublishError) as caught:
        publish(settings, out)

    assert caught.value.message.startswith(f"s3://{bucket}/site: access denied")
    assert "AWS_ACCESS_KEY_ID" in caught.value.message and "\n" not in caught.value.message
    assert listing(aws_env.client(), bucket, "site") == before


def test_unreachable_endpoint_is_one_clear_error(site, aws_env: SeaweedS3, monkeypatch):
    settings, out = site
    with socket_closed_port() as port:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            publish(settings.replace(target="s3://any-bucket/site"), out)
    assert caught.value.message == (f"s3://any-bucket/site: cannot reach the S3 endpoint http://127.0.0.1:{port} "
                                    "(check AWS_ENDPOINT_URL_S3 and the network)")
    assert time.monotonic() - started < 15


class socket_closed_port:
    """A loopback port that nothing listens on (bound, never listening, so nobody else takes it meanwhile)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_missing_credentials_are_one_clear_error(site, aws_env: SeaweedS3, monkeypatch):
    settings, out = site
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PublishError, match=r"^s3://any-bucket/site: no usable AWS credentials: set AWS_ACCESS_KEY_ID"):
        publish(settings.replace(target="s3://any-bucket/site"), out)


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


# --- units: planning, headers, retries --------------------------------------------------------------------


def local(path: str, sha: str = "a" * 64) -> LocalFile:
    return LocalFile(path, sha, 1, Path("/nonexistent") / path)


def test_plan_uploads_assets_and_documents_then_invoice_pages_then_account_pages():
    files = {p: local(p) for p in ("c/k/index.html", "c/k/i/I1.html", "docs/k/x.pdf", "assets/p.1.css",
                                   "c/k/statement.html")}
    state = RemoteState({"c/old/index.html": "b" * 64, "c/old/i/I9.html": "b" * 64, "docs/old/y.pdf": "b" * 64})

    plan = make_plan(files, state, {})

    assert [f.path for f in plan.uploads] == ["assets/p.1.css", "docs/k/x.pdf", "c/k/i/I1.html",
                                              "c/k/index.html", "c/k/statement.html"]
    assert plan.deletes == ["c/old/index.html", "c/old/i/I9.html", "docs/old/y.pdf"]
    assert plan.journal == set(files) | set(state.files) and plan.write_manifest


def test_plan_trusts_the_manifest_but_checks_paths_an_unfinished_run_touched():
    files = {"c/k/index.html": local("c/k/index.html"), "c/k/i/I1.html": local("c/k/i/I1.html")}
    state = RemoteState({p: "a" * 64 for p in files}, unsure={"c/k/i/I1.html", "c/gone/index.html"},
                        journal={"c/k/i/I1.html", "c/gone/index.html"})

    plan = make_plan(files, state, {"c/k/i/I1.html": "c" * 64})

    assert [f.path for f in plan.uploads] == ["c/k/i/I1.html"]  # the killed run left other content there
    assert plan.deletes == ["c/gone/index.html"]  # uploaded by the killed run, not in this build
    assert make_plan(files, state, {"c/k/i/I1.html": "a" * 64}).uploads == []


def test_dot_files_and_tricky_paths_are_not_site_paths():
    assert is_site_path("c/k/i/I1.html")
    for path in (".manifest.json", ".build.lock", "c/k/.x.html.12.tmp", "../x", "/etc/passwd", "c//x", ""):
        assert not is_site_path(path)


def slowdown() -> ClientError:
    return ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                        "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")


def test_retries_back_off_exponentially_with_full_jitter(monkeypatch):
    monkeypatch.setattr(s3target, "BACKOFF_BASE", 0.5)
    assert s3target.backoff_delay(0, lambda: 1.0) == 0.5
    assert s3target.backoff_delay(3, lambda: 1.0) == 4.0
    assert s3target.backoff_delay(10, lambda: 1.0) == s3target.BACKOFF_CAP
    assert s3target.backoff_delay(3, lambda: 0.0) == 0.0

    waits: list[float] = []
    outcomes = iter([slowdown(), EndpointConnectionError(endpoint_url="http://x"), slowdown(), "done"])

    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert s3target.with_retries(flaky, attempts=5, sleep=waits.append) == "done"
    assert len(waits) == 3 and all(0 <= w <= 0.5 * 2 ** n for n, w in enumerate(waits))


def test_retries_give_up_on_errors_that_waiting_cannot_fix():
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    calls = []

    def refuse() -> None:
        calls.append(1)
        raise denied

    with pytest.raises(ClientError):
        s3target.with_retries(refuse, attempts=5, sleep=lambda _s: None)
    assert len(calls) == 1

    always = itertools.count()
    with pytest.raises(ClientError):
        s3target.with_retries(lambda: (next(always), (_ for _ in ()).throw(slowdown())), attempts=3,
                              sleep=lambda _s: None)
    assert next(always) == 3


def test_unreadable_target_manifest_counts_as_none():
    assert decode_manifest(b"not gzip") is None
    assert decode_manifest(b"\x1f\x8b\x08\x00garbage") is None


def test_publish_refuses_a_file_changed_since_the_build(site, tmp_path: Path):
    settings, out = site
    page = next(p for p in Manifest.load(out).files if p.endswith("index.html"))
    (out / page).write_text("changed by hand")
    with pytest.raises(PublishError, match=f"changed since the build.*{MANIFEST}"):
        publish(settings.replace(target=str(tmp_path / "public")), out)
