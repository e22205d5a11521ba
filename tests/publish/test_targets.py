"""The Target interface: the folder and the S3 implementation (a real SeaweedFS server) pass the SAME tests.

Each test gets `place`, one per backend: the Target under test, chosen from its location by `choose_target` as every
caller does, plus a way to look at and plant into the storage from outside the interface (the filesystem, or a
plain boto3 client), so that what a test checks does not depend on the code it checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from portal.publish.manifest import REMOTE_MANIFEST, encode_manifest
from portal.publish.objects import Download, LocalFile, PublishError
from portal.publish.plan import read_state
from portal.publish.s3 import S3Target
from portal.publish.targets import FolderTarget, Target, choose_target
from tests.s3server import SeaweedS3

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Place:
    """A target and its storage seen from outside: `plant(key, data)` and `peek(key)` use keys relative to the
    target's root (its folder, or its bucket prefix); `outside(key, data)` plants beside the target, not in it."""

    target: Target
    plant: Callable[[str, bytes], None]
    peek: Callable[[str], bytes | None]
    outside: Callable[[str, bytes], None]
    broken: Callable[[], Target]  # a target of the same kind whose storage cannot be used


def _folder_place(tmp_path: Path) -> Place:
    root = tmp_path / "target"

    def plant(key: str, data: bytes, base: Path = root) -> None:
        (base / key).parent.mkdir(parents=True, exist_ok=True)
        (base / key).write_bytes(data)

    def peek(key: str) -> bytes | None:
        return (root / key).read_bytes() if (root / key).is_file() else None

    def broken() -> Target:
        (tmp_path / "a-file").write_bytes(b"not a folder")
        return choose_target(str(tmp_path / "a-file"))

    return Place(choose_target(str(root)), plant, peek, lambda key, data: plant(key, data, tmp_path / "beside"),
                 broken)


def _s3_place(server: SeaweedS3, bucket: str) -> Place:
    client = server.client()

    def peek(key: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=f"site/{key}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Place(choose_target(f"s3://{bucket}/site"),
                 lambda key, data: client.put_object(Bucket=bucket, Key=f"site/{key}", Body=data), peek,
                 lambda key, data: client.put_object(Bucket=bucket, Key=f"beside/{key}", Body=data),
                 lambda: choose_target(f"s3://no-such-bucket-{bucket}/site"))


@pytest.fixture(params=["folder", "s3"])
def place(request, tmp_path: Path) -> Place:
    if request.param == "folder":
        return _folder_place(tmp_path)
    return _s3_place(request.getfixturevalue("aws_env"), request.getfixturevalue("bucket"))


def site_file(tmp_path: Path, path: str, data: bytes) -> LocalFile:
    """A file of a build, as the build's manifest would describe it."""
    source = tmp_path / "build" / path
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    return LocalFile(path, hashlib.sha256(data).hexdigest(), len(data), source)


def fetch(download: Download) -> bytes:
    """What a reader gets from a download: the URL's answer, or the local file the caller would serve."""
    if download.url:
        answer = requests.get(download.url, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.content
    assert download.file is not None
    return download.file.read_bytes()


def test_choose_target_picks_the_backend_from_the_location_and_refuses_others(tmp_path: Path):
    s3 = choose_target("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Target) and s3.name == "s3://bucket/some/prefix" and s3.local_root is None
    folder = choose_target(str(tmp_path / "public"))
    assert isinstance(folder, FolderTarget) and folder.local_root == tmp_path / "public"
    with pytest.raises(PublishError, match="use a folder path or s3://bucket/prefix"):
        choose_target("ftp://host/site")
    with pytest.raises(PublishError, match="no bucket name"):
        choose_target("s3:///prefix")


def test_check_passes_on_usable_storage_and_is_one_clear_line_otherwise(place: Place):
    place.target.check()
    with pytest.raises(PublishError) as caught:
        place.broken().check()
    assert "\n" not in caught.value.message and caught.value.message


def test_private_objects_round_trip_and_missing_ones_are_none(place: Place):
    target = place.target
    target.check()
    assert target.read(".portal-journal.json.gz") is None
    target.write(".portal-journal.json.gz", b"journal")
    target.write("disputes/7/1-scan.pdf", PDF, "application/pdf")
    assert target.read(".portal-journal.json.gz") == b"journal"
    assert place.peek("disputes/7/1-scan.pdf") == PDF
    target.write(".portal-journal.json.gz", b"replaced")
    assert target.read(".portal-journal.json.gz") == b"replaced"
    target.remove(".portal-journal.json.gz")
    target.remove(".portal-journal.json.gz")  # a missing object: no error
    assert target.read(".portal-journal.json.gz") is None and place.peek(".portal-journal.json.gz") is None


def test_a_site_file_is_stored_with_its_sha256_and_a_scan_finds_only_site_files(place: Place, tmp_path: Path):
    target = place.target
    target.check()
    page = site_file(tmp_path, "c/key/i/inv-1.html", b"<p>invoice</p>")
    target.put(page)
    assert target.remote_sha(page.path) == page.sha256 and place.peek(page.path) == b"<p>invoice</p>"
    assert target.remote_sha("c/key/i/missing.html") is None
    target.write(REMOTE_MANIFEST, b"manifest")  # private objects are not site files
    place.plant("keep-me.txt", b"the owner's")  # outside c/, assets/ and docs/
    place.plant("c/key/.index.html.123.tmp", b"a temp file")
    place.outside("c/other/index.html", b"another site")
    assert target.scan() == {page.path: page.size}


def test_delete_removes_site_files_and_nothing_else(place: Place, tmp_path: Path):
    target = place.target
    target.check()
    kept, gone = (site_file(tmp_path, f"docs/key/{name}.pdf", PDF + name.encode()) for name in ("kept", "gone"))
    target.put(kept)
    target.put(gone)
    place.plant("keep-me.txt", b"the owner's")
    target.delete([gone.path, "c/key/never-there.html"])
    assert target.scan() == {kept.path: kept.size}
    assert place.peek(gone.path) is None and place.peek("keep-me.txt") == b"the owner's"


def test_a_file_changed_since_the_build_is_not_stored(place: Place, tmp_path: Path):
    target = place.target
    target.check()
    page = site_file(tmp_path, "c/key/index.html", b"as built")
    page.source.write_bytes(b"changed by hand")
    with pytest.raises(PublishError, match="changed since the build"):
        target.put(page)
    assert place.peek(page.path) is None


def test_a_download_gives_the_stored_bytes(place: Place):
    target = place.target
    target.check()
    target.write("disputes/7/1-scan.pdf", PDF, "application/pdf")
    download = target.download("disputes/7/1-scan.pdf", 60, "scan.pdf", disposition="attachment")
    assert bool(download.url) != bool(download.file)  # one way to reach it, never both
    assert fetch(download) == PDF


def test_without_a_readable_manifest_every_site_file_is_unsure(place: Place, tmp_path: Path):
    target = place.target
    target.check()
    page = site_file(tmp_path, "c/key/index.html", b"page")
    target.put(page)
    target.write(REMOTE_MANIFEST, encode_manifest({page.path: page.sha256}, "2026-01-01"))
    trusted = read_state(target)
    assert trusted.has_manifest and trusted.files == {page.path: page.sha256} and not trusted.unsure
    target.write(REMOTE_MANIFEST, b"not gzip")
    lost = read_state(target)
    assert not lost.has_manifest and lost.files == {} and lost.unsure == {page.path}
    assert lost.sizes == {page.path: page.size}
