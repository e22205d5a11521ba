"""Publish the built site to its target: a local folder, or S3 (`s3://bucket/prefix`, see s3target.py).

The build's manifest (SHA-256 per file) is compared with the target's own manifest, and only new and changed
files are uploaded, in an order that never shows a reader a page linking to something not there yet:

1. assets and documents, 2. invoice pages, 3. account and statement pages (they link to the invoice pages),
4. the target's manifest (written last of all uploads), 5. deletions of what the build no longer holds,
pages first, and only once every upload succeeded.

Before changing anything, the target receives a journal of every path the run may write or delete. A run
killed half-way leaves its journal behind; the next run checks those paths one by one (the object's sha256
metadata, or the file itself) and deletes the ones the build no longer has, so publishing converges even
when the build changed in between: no page of a revoked customer key is left behind.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import mimetypes
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Protocol

from portal.build.pipeline import LOCK, MANIFEST, Manifest
from portal.core.config import Settings
from portal.core.errors import PortalError
from portal.export.reader import document_disposition

REMOTE_MANIFEST = ".portal-manifest.json.gz"  # what the target holds: path -> sha256
JOURNAL = ".portal-journal.json.gz"  # paths an unfinished run may have written or still has to delete
REMOTE_VERSION = 1
DEFAULT_WORKERS = 16
# Only these top-level folders are ever deleted by a scan, so a first publish into a bucket or folder that
# holds other things cannot remove them.
SITE_ROOTS = ("assets/", "c/", "docs/")

PAGE_CACHE = "no-cache"  # always revalidated: balances change after a payment
ASSET_CACHE = "public, max-age=31536000, immutable"  # the file name carries its content hash
PRIVATE_CACHE = "private, no-store"  # documents: reached only through short-lived presigned URLs

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

Progress = Callable[[int, int], None]


class PublishError(PortalError):
    """Publishing was refused or failed; the target still serves what it served before."""


@dataclass
class PublishResult:
    target: str
    uploaded: int = 0
    unchanged: int = 0
    deleted: int = 0
    bytes: int = 0  # bytes uploaded
    dry_run: bool = False
    note: str = ""  # set when nothing was attempted, saying why
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for people, e.g. `s3://b/site: 12 uploaded (96.0 KB), 2300 unchanged, 3 deleted in 1.2 s`."""
        if self.note:
            return f"{self.target}: {self.note}"
        size = size_text(self.bytes)
        if self.dry_run:
            return (f"{self.target}: dry run: would upload {self.uploaded} ({size}) and delete {self.deleted}; "
                    f"{self.unchanged} unchanged")
        return (f"{self.target}: {self.uploaded} uploaded ({size}), {self.unchanged} unchanged, "
                f"{self.deleted} deleted in {self.seconds:.1f} s")


@dataclass(frozen=True)
class LocalFile:
    """One file of the built site, as the build's manifest describes it."""

    path: str
    sha256: str
    size: int
    source: Path

    def read(self) -> bytes:
        """The file's bytes, refusing a file that changed since the build wrote the manifest."""
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
        digest = hashlib.sha256()
        try:
            with open(self.source, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            raise PublishError(f"{self.source}: missing from the build; run `portal build` again") from None
        if digest.hexdigest() != self.sha256:
            raise PublishError(f"{self.source}: changed since the build; run `portal build` again")


@dataclass
class RemoteState:
    """What the target holds, as far as it can tell without reading every object."""

    files: dict[str, str]  # its manifest: path -> sha256, as left by the last complete run
    unsure: set[str] = field(default_factory=set)  # paths that may differ from `files`: check before trusting
    sizes: dict[str, int] = field(default_factory=dict)  # sizes found by a scan (saves checks)
    has_manifest: bool = True
    journal: set[str] = field(default_factory=set)  # a journal left by an unfinished run


@dataclass
class Plan:
    uploads: list[LocalFile]  # in publishing order
    deletes: list[str]  # in deleting order
    unchanged: int
    manifest: dict[str, str]  # what the target holds when the run is done
    write_manifest: bool
    journal: set[str]  # the journal to hold while changing things


class Target(Protocol):
    name: str
    delete_batch: int

    def check(self) -> None: ...
    def read_state(self) -> RemoteState: ...
    def remote_sha(self, path: str) -> str | None: ...
    def put(self, item: LocalFile) -> None: ...
    def write_manifest(self, data: bytes) -> None: ...
    def write_journal(self, data: bytes) -> None: ...
    def clear_journal(self) -> None: ...
    def delete(self, paths: list[str]) -> None: ...


# --- what each object is ---------------------------------------------------------------------------------


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    return CONTENT_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def cache_control(path: str) -> str:
    if path.startswith("assets/"):
        return ASSET_CACHE
    if path.startswith("docs/"):
        return PRIVATE_CACHE
    return PAGE_CACHE


def upload_phase(path: str) -> int:
    """0: assets and documents; 1: invoice pages; 2: account and statement pages (they link to the others)."""
    if not path.startswith("c/"):
        return 0
    return 1 if "/i/" in path else 2


def is_site_path(path: str) -> bool:
    """A relative path without dot-files (manifests, locks, temp files) or tricks like `..`."""
    parts = path.split("/")
    return bool(path) and "\\" not in path and all(p and not p.startswith(".") for p in parts)


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


# --- the target's manifest and journal ---------------------------------------------------------------------


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


# --- planning ------------------------------------------------------------------------------------------------


def make_plan(local: dict[str, LocalFile], state: RemoteState, checked: dict[str, str | None]) -> Plan:
    """Decide what to upload and delete. `checked` holds the sha256 found on the target for unsure paths."""
    uploads = []
    for path, item in local.items():
        held = checked.get(path) if path in state.unsure else state.files.get(path)
        if held != item.sha256:
            uploads.append(item)
    uploads.sort(key=lambda f: (upload_phase(f.path), f.path))
    stale = (set(state.files) | state.unsure) - set(local)
    deletes = sorted(stale, key=lambda p: (-upload_phase(p), p))
    manifest = {p: f.sha256 for p, f in local.items()}
    return Plan(uploads=uploads, deletes=deletes, unchanged=len(local) - len(uploads), manifest=manifest,
                write_manifest=not state.has_manifest or state.files != manifest,
                journal=state.journal | {f.path for f in uploads} | stale)


# --- publishing ----------------------------------------------------------------------------------------------


def publish(settings: Settings, site_dir: str | os.PathLike = "build", dry_run: bool = False,
            progress: Progress | None = None, *, workers: int = DEFAULT_WORKERS) -> PublishResult:
    """Bring `settings.target` up to date with the built site in `site_dir`; see the module docstring.

    `progress(done, total)` is called from the calling thread as uploads and deletions complete. Raises
    PublishError (one line: what failed and where) without deleting anything when an upload fails.
    """
    started = time.monotonic()
    site = Path(site_dir)
    target = open_target(settings.target, site, workers)
    if target is None:
        return PublishResult(settings.target, dry_run=dry_run,
                             note=f"the target is the build folder {site} itself: nothing to publish")
    result = PublishResult(target.name, dry_run=dry_run)
    with _build_lock(site):
        manifest = _load_build(site)
        local = _local_files(site, manifest)
        target.check()
        state = target.read_state()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
            checked = _check_unsure(pool, target, state, local, workers)
            plan = make_plan(local, state, checked)
            result.uploaded, result.deleted, result.unchanged = len(plan.uploads), len(plan.deletes), plan.unchanged
            result.bytes = sum(f.size for f in plan.uploads)
            if not dry_run:
                _apply(pool, target, plan, state, manifest.as_of, workers, progress)
    result.seconds = time.monotonic() - started
    return result


def open_target(target: str, site: Path, workers: int = DEFAULT_WORKERS) -> Target | None:
    """The configured target, or None when it is the build folder itself (nothing to do)."""
    if target.startswith("s3://"):
        from portal.publish.s3 import S3Target  # boto3 takes a moment to import: only when needed

        return S3Target(target, workers)
    if "://" in target:
        raise PublishError(f"target {target!r}: use a folder path or s3://bucket/prefix")
    root, built = Path(target).resolve(), site.resolve()
    if root == built:
        return None
    if root.is_relative_to(built) or built.is_relative_to(root):
        raise PublishError(f"target {target}: must not be inside the build folder {site} or contain it")
    return FolderTarget(Path(target))


def _load_build(site: Path) -> Manifest:
    if not (site / MANIFEST).is_file():
        raise PublishError(f"{site}: no build found ({MANIFEST} is missing); run `portal build` first")
    manifest = Manifest.load(site)
    if not manifest.files:
        raise PublishError(f"{site / MANIFEST}: unreadable or empty; run `portal build` again")
    return manifest


def _local_files(site: Path, manifest: Manifest) -> dict[str, LocalFile]:
    files = {}
    for path, (sha, size, _customer) in manifest.files.items():
        if not is_site_path(path):
            raise PublishError(f"{site / MANIFEST}: {path!r} is not a path inside the site; run `portal build` again")
        files[path] = LocalFile(path, sha, size, site / path)
    return files


def _check_unsure(pool: ThreadPoolExecutor, target: Target, state: RemoteState, local: dict[str, LocalFile],
                  workers: int) -> dict[str, str | None]:
    """Read the sha256 of paths whose content the target's manifest cannot vouch for."""
    todo = [p for p in sorted(state.unsure & set(local))
            if p not in state.sizes or state.sizes[p] == local[p].size]
    checked: dict[str, str | None] = {}

    def check(path: str) -> int:
        checked[path] = target.remote_sha(path)
        return 0

    _run_all(pool, check, todo, workers * 4, lambda _n: None, target.name, "checking")
    return checked


def _apply(pool: ThreadPoolExecutor, target: Target, plan: Plan, state: RemoteState, as_of: str, workers: int,
           progress: Progress | None) -> None:
    total = len(plan.uploads) + len(plan.deletes)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    journal_written = False
    if (plan.uploads or plan.deletes) and plan.journal != state.journal:
        target.write_journal(encode_journal(plan.journal))
        journal_written = True
    # Each phase completes before the next starts: a page goes up only once what it links to is there.
    for _phase, items in groupby(plan.uploads, key=lambda f: upload_phase(f.path)):
        _run_all(pool, _counted(target.put), items, workers * 4, tick, target.name, "uploading")
    if plan.write_manifest:
        target.write_manifest(encode_manifest(plan.manifest, as_of))
    for _phase, paths in groupby(plan.deletes, key=upload_phase):
        batches = _batches(list(paths), target.delete_batch)
        _run_all(pool, _counted(target.delete), batches, workers * 2, tick, target.name, "deleting")
    if journal_written or state.journal or not state.has_manifest:
        target.clear_journal()  # after a scan, a journal may be there that could not be read


def _counted(operation: Callable) -> Callable:
    def run(item: LocalFile | list[str]) -> int:
        operation(item)
        return len(item) if isinstance(item, list) else 1
    return run


def _run_all(pool: ThreadPoolExecutor, operation: Callable, items: Iterable, window: int,
             on_done: Callable[[int], None], where: str, doing: str) -> None:
    """Run `operation` over `items` with at most `window` in flight; stop at the first failure."""
    pending: dict[Future, object] = {}

    def collect(futures: set[Future]) -> None:
        for future in futures:
            item = pending.pop(future)
            try:
                on_done(future.result())
            except PublishError:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure becomes one clear line
                what = item.path if isinstance(item, LocalFile) else str(item)[:80]
                raise PublishError(f"{where}: {doing} {what} failed: {exc}") from exc

    try:
        for item in items:
            pending[pool.submit(operation, item)] = item
            if len(pending) >= window:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
        while pending:
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
    except BaseException as exc:
        for future in pending:
            future.cancel()
        if isinstance(exc, PublishError) and doing == "uploading":
            raise PublishError(f"{exc.message}; nothing was deleted: publish again to finish") from exc
        raise


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextmanager
def _build_lock(site: Path) -> Iterator[None]:
    """Share the build's lock, so a build running at the same time cannot change files under our feet."""
    if not site.is_dir():
        yield
        return
    with open(site / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- a folder target -------------------------------------------------------------------------------------------


class FolderTarget:
    """Another folder (a mounted share, a web server's root). Files are replaced atomically."""

    delete_batch = 200

    def __init__(self, root: Path):
        self.root = root
        self.name = str(root)

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise PublishError(f"target {self.root}: exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"target {self.root}: cannot create it: {exc.strerror}") from None

    def read_state(self) -> RemoteState:
        manifest = self._read(REMOTE_MANIFEST)
        files = decode_manifest(manifest) if manifest is not None else None
        journal_data = self._read(JOURNAL)
        journal = set() if journal_data is None else decode_journal(journal_data)
        if files is None or journal is None:
            return self._scan()
        return RemoteState(files, unsure=set(journal), journal=journal)

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def _scan(self) -> RemoteState:
        sizes = {}
        for top in SITE_ROOTS:
            for folder, dirs, names in os.walk(self.root / top):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in names:
                    path = Path(folder, name)
                    rel = path.relative_to(self.root).as_posix()
                    if is_site_path(rel):
                        sizes[rel] = path.stat().st_size
        return RemoteState({}, unsure=set(sizes), sizes=sizes, has_manifest=False)

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

    def _write(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temp.write_bytes(data)
        os.replace(temp, target)

    def write_manifest(self, data: bytes) -> None:
        self._write(REMOTE_MANIFEST, data)

    def write_journal(self, data: bytes) -> None:
        self._write(JOURNAL, data)

    def clear_journal(self) -> None:
        (self.root / JOURNAL).unlink(missing_ok=True)

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


# --- private documents ---------------------------------------------------------------------------------------


def presign_document(settings: Settings, object_key: str, expires_in: int = 300, *,
                     filename: str | None = None) -> str:
    """A presigned GET URL, valid `expires_in` seconds, for a document of the site (`docs/<key>/<file>`).

    Documents are private objects: the webhook's /d/ route checks a token, then redirects here. `filename`
    sets the name the browser saves the file under. For a folder target the dev server serves documents, so
    this raises PublishError.
    """
    if not settings.target.startswith("s3://"):
        raise PublishError(f"target {settings.target}: documents in a folder are served by the webhook's dev "
                           "server (portal serve), not through presigned URLs")
    if not object_key.startswith("docs/") or not is_site_path(object_key):
        raise PublishError(f"{object_key!r}: only documents (docs/...) can be presigned")
    if not 1 <= expires_in <= 7 * 24 * 3600:
        raise PublishError(f"expires_in: {expires_in} must be between 1 second and 7 days")
    from portal.publish.s3 import presign

    # Inline only for the types browsers show safely; anything else downloads, as from a folder target.
    return presign(settings.target, object_key, expires_in, filename, disposition=document_disposition(object_key))
