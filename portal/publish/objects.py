"""What a target stores, whatever the backend: the site's files, the headers each path gets, and how a reader
reaches a stored file.

Every target (portal/publish/targets.py) speaks in these terms, so publish, the shard publish and reconcile,
document downloads and dispute attachments never ask which backend they talk to. The headers are part of the
site's contract (docs/publish.md, "Headers"): pages are always revalidated because balances change after a
payment, assets are immutable because their names carry their content hash, documents are private.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from portal.core.errors import PortalError
from portal.publish.manifest import MANIFEST

# Only these top-level folders are ever deleted by a scan, so a first publish into a bucket or folder that
# holds other things cannot remove them.
SITE_ROOTS = ("assets/", "c/", "docs/")

PAGE_CACHE = "no-cache"  # always revalidated: balances change after a payment
ASSET_CACHE = "public, max-age=31536000, immutable"  # the file name carries its content hash
PRIVATE_CACHE = "private, no-store"  # documents: reached only through short-lived presigned URLs
GZIP = "application/gzip"  # the target's own manifests and journals

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


class PublishError(PortalError):
    """Publishing (or reaching a target) was refused or failed; the target still serves what it served before."""


@dataclass(frozen=True)
class LocalFile:
    """One file of the built site, as the build's manifest describes it."""

    path: str
    sha256: str
    size: int
    source: Path | None  # the built file; None when `data` holds the bytes (a customer rendered in memory)
    data: bytes | None = None

    def read(self) -> bytes:
        """The file's bytes, refusing a file that changed since the build wrote the manifest."""
        if self.data is not None:
            return self.data
        if self.source is None:
            raise PublishError(f"{self.path}: neither bytes nor a file to publish")
        try:
            data = self.source.read_bytes()
        except FileNotFoundError:
            raise PublishError(f"{self.source}: missing from the build; run `portal build` again") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise PublishError(f"{self.source}: changed since the build (its SHA-256 does not match {MANIFEST}); "
                               "run `portal build` again")
        return data

    def verify(self) -> None:
        """Like read(), for files too big to hold in memory."""
        if self.data is not None or self.source is None:
            self.read()
            return
        digest = hashlib.sha256()
        try:
            with open(self.source, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            raise PublishError(f"{self.source}: missing from the build; run `portal build` again") from None
        if digest.hexdigest() != self.sha256:
            raise PublishError(f"{self.source}: changed since the build; run `portal build` again")


@dataclass(frozen=True)
class Download:
    """How a reader gets a stored file: a short-lived `url` to send the browser to (S3: presigned), or the `file`
    on this machine for the caller to serve (a folder: the webhook's /files/ route, the staff download)."""

    url: str = ""
    file: Path | None = None


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return CONTENT_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def cache_control(path: str) -> str:
    if path.startswith("assets/"):
        return ASSET_CACHE
    if path.startswith("docs/"):
        return PRIVATE_CACHE
    return PAGE_CACHE


def is_site_path(path: str) -> bool:
    """A relative path without dot-files (manifests, locks, temp files) or tricks like `..`."""
    parts = path.split("/")
    return bool(path) and "\\" not in path and all(p and not p.startswith(".") for p in parts)
