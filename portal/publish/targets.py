"""Where files are kept: one `Target` interface, a folder or an S3 bucket behind it, chosen once by `choose_target`.

Every user goes through the interface and asks it, never the location string, what to do: publish and the shard
publish and reconcile (the site's files and the target's own manifests), the webhook's document downloads (a
presigned URL, or a local file it serves itself), and the private dispute attachments. So there is one place that
knows that `s3://bucket/prefix` means S3 (`choose_target`), and adding a backend means adding one class here.

Both implementations keep the same promises, checked by the same tests (tests/publish/test_targets.py):
- a file is replaced atomically (a reader sees the old bytes or the new ones, never half);
- `scan` lists only site paths (no dot-files) under assets/, c/ and docs/, so what else the folder or bucket holds
  is never deleted;
- `read` of something missing is None and `remove` of something missing is no error;
- failures are one PublishError line that says where and what, never a traceback.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from portal.core.config import is_s3_url
from portal.publish.objects import GZIP, SITE_ROOTS, Download, LocalFile, PublishError, is_site_path


class Target(Protocol):
    """A folder or a bucket and prefix that holds the site (c/, assets/, docs/) and private objects beside it
    (the target's manifests and journals; dispute attachments under disputes/ in the private target)."""

    name: str  # as people read it in messages: the folder, or s3://bucket/prefix
    delete_batch: int  # paths per delete() call
    local_root: Path | None  # the folder holding the files; None when they are not on this machine

    def check(self) -> None:
        """Fail fast, with one clear line, when the target cannot be used (no bucket, no access, not a folder)."""

    def scan(self, roots: tuple[str, ...] = SITE_ROOTS) -> dict[str, int]:
        """The site files found under `roots` (folders of the site ending in "/": by default assets/, c/ and docs/):
        path -> size (when the target's manifest is lost; one customer's folders before its first refresh)."""

    def remote_sha(self, path: str) -> str | None:
        """The SHA-256 of what the target holds at `path`, or None when it holds nothing there."""

    def put(self, item: LocalFile) -> None:
        """Store one file of the site with its headers (content type, cache control, SHA-256)."""

    def delete(self, paths: list[str]) -> None:
        """Remove site files (at most `delete_batch`); missing ones are no error."""

    def read(self, name: str) -> bytes | None:
        """A private object's bytes, or None when there is none."""

    def write(self, name: str, data: bytes, content_type: str = GZIP) -> None:
        """Store a private object (never cached, never public)."""

    def remove(self, name: str) -> None:
        """Remove a private object; a missing one is no error."""

    def download(self, path: str, expires_in: int, filename: str | None = None,
                 disposition: str = "inline") -> Download:
        """How a reader gets `path` for `expires_in` seconds, saved as `filename`, shown `inline` or downloaded
        as an `attachment`: a URL (S3) or the local file (a folder, which the caller serves)."""


def choose_target(location: str, workers: int = 1) -> Target:
    """The one place that turns a configured location into a Target: `s3://bucket/prefix` is an S3Target, a path
    is a FolderTarget, anything else with `://` is refused. `workers`: requests in flight at once (S3)."""
    if is_s3_url(location):
        from portal.publish.s3 import S3Target  # boto3 takes a moment to import: only when needed

        return S3Target(location, workers)
    if "://" in location:
        raise PublishError(f"target {location!r}: use a folder path or s3://bucket/prefix")
    return FolderTarget(Path(location))


class FolderTarget:
    """A folder (a web server's root, a mounted share, the private folder). Files are replaced atomically."""

    delete_batch = 200

    def __init__(self, root: Path):
        self.root = root
        self.name = str(root)

    @property
    def local_root(self) -> Path:
        return self.root

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise PublishError(f"target {self.root}: exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"target {self.root}: cannot create it: {exc.strerror}") from None

    def scan(self, roots: tuple[str, ...] = SITE_ROOTS) -> dict[str, int]:
        sizes = {}
        for top in roots:
            for folder, dirs, names in os.walk(self.root / top):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in names:
                    path = Path(folder, name)
                    rel = path.relative_to(self.root).as_posix()
                    if is_site_path(rel):
                        sizes[rel] = path.stat().st_size
        return sizes

    def remote_sha(self, path: str) -> str | None:
        digest = hashlib.sha256()
        try:
            with open(self.root / path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return digest.hexdigest()

    def put(self, item: LocalFile) -> None:
        self._write(item.path, item.read())

    def delete(self, paths: list[str]) -> None:
        for path in paths:
            target = self.root / path
            target.unlink(missing_ok=True)
            folder = target.parent
            while folder != self.root and folder.is_relative_to(self.root):
                try:
                    folder.rmdir()  # only succeeds once the folder is empty
                except OSError:
                    break
                folder = folder.parent

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes, content_type: str = GZIP) -> None:
        self._write(name, data)  # a folder keeps no content type: whoever serves it decides from the name

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def download(self, path: str, expires_in: int, filename: str | None = None,
                 disposition: str = "inline") -> Download:
        return Download(file=self.root / path)

    def _write(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temp.write_bytes(data)
        os.replace(temp, target)
