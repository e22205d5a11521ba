"""The manifests: the contract between the build that writes a site folder and the publish that copies it.

- The build folder's `.manifest.json` (`Manifest`): every file's SHA-256, size and owning customer, and each
  customer's key and render fingerprint. The build writes it last, atomically; publish trusts nothing else
  about the folder. An unreadable manifest reads as empty, which makes the next build render everything:
  always correct, only slower.
- The build folder's lock `.build.lock` (`folder_lock`): a build holds it exclusively, publish shares it, so
  neither sees the other's half-written state.
- A target's own manifest `.portal-manifest.json.gz` (path -> SHA-256, written after every upload of a run
  succeeded) and journal `.portal-journal.json.gz` (paths an unfinished run may have written or still has
  to delete); docs/publish.md says how publish uses them to upload only what changed and to converge after a
  run was killed.

It lives in portal.publish, below portal.build, because both sides read it and publish may not import the build.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = ".manifest.json"
LOCK = ".build.lock"
MANIFEST_VERSION = 1

REMOTE_MANIFEST = ".portal-manifest.json.gz"  # what the target holds: path -> sha256
JOURNAL = ".portal-journal.json.gz"  # paths an unfinished run may have written or still has to delete
REMOTE_VERSION = 1


@dataclass
class Manifest:
    """What the output folder holds: path -> (sha256, size, owning customer id or "" for shared assets)."""

    files: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    customers: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {"key", "fingerprint"}
    as_of: str = ""
    shard: str = ""  # "I/N" for a sharded build (only that shard's customers); "" for the whole site
    # customer id -> its page revision (portal/store/jobqueue.py) read before the build read its data; only
    # customers that ever changed after an import are listed (the others are at 0)
    revisions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION:
                return cls()
            return cls({p: (v[0], v[1], v[2]) for p, v in data["files"].items()}, data["customers"],
                       data.get("as_of", ""), data.get("shard", ""),
                       {c: int(r) for c, r in data.get("revisions", {}).items()})
        except (ValueError, KeyError, TypeError, IndexError):
            return cls()  # unreadable: rebuild everything, which is always correct

    def save(self, folder: Path) -> None:
        # The (sha256, size, owner) tuples are written as JSON arrays, as lists would be.
        data = {"version": MANIFEST_VERSION, "as_of": self.as_of, "customers": self.customers,
                "files": dict(sorted(self.files.items()))}
        if self.shard:  # only then: an unsharded manifest stays byte for byte what it was
            data["shard"] = self.shard
        if self.revisions:
            data["revisions"] = dict(sorted(self.revisions.items()))
        atomic_write(folder / MANIFEST, json.dumps(data, separators=(",", ":")).encode())


def atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `target` so that a reader sees the old file or the new one, never half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, target)


@contextmanager
def folder_lock(folder: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold the build folder's lock: exclusive for a build (a second one waits rather than interleaving writes),
    `shared` for publishing (a build running at the same time cannot change files under our feet). A shared
    lock of a folder that does not exist is no lock: there is nothing to protect (and publish says so)."""
    if shared and not folder.is_dir():
        yield
        return
    with open(folder / LOCK, "a") as handle:  # "a": taking the lock must not touch the file's content
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def encode_manifest(files: dict[str, str], as_of: str) -> bytes:
    data = {"version": REMOTE_VERSION, "as_of": as_of,
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"), "files": files}
    return gzip.compress(json.dumps(data, separators=(",", ":"), sort_keys=True).encode(), 5, mtime=0)


def decode_manifest(data: bytes) -> dict[str, str] | None:
    """The files of a target manifest, or None when it is unreadable (the caller then scans the target)."""
    try:
        decoded = json.loads(gzip.decompress(data))
        if decoded.get("version") != REMOTE_VERSION:
            return None
        files = decoded["files"]
        if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
            return files
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def encode_journal(paths: set[str]) -> bytes:
    return gzip.compress(json.dumps({"version": REMOTE_VERSION, "paths": sorted(paths)}).encode(), 5, mtime=0)


def decode_journal(data: bytes) -> set[str] | None:
    try:
        decoded = json.loads(gzip.decompress(data))
        if decoded.get("version") == REMOTE_VERSION and all(isinstance(p, str) for p in decoded["paths"]):
            return set(decoded["paths"])
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None
