"""Publish the built site to its target (a folder, or S3 `s3://bucket/prefix`: portal/publish/targets.py).

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

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from portal.core.config import Settings
from portal.publish.customer import forget_customer_manifests
from portal.publish.freshness import Freshness
from portal.publish.manifest import (
    JOURNAL,
    MANIFEST,
    REMOTE_MANIFEST,
    Manifest,
    encode_journal,
    encode_manifest,
    folder_lock,
)
from portal.publish.objects import LocalFile, PublishError, is_site_path
from portal.publish.plan import Plan, RemoteState, make_plan, read_state, upload_phase
from portal.publish.targets import Target, choose_target
from portal.publish.transfers import DEFAULT_WORKERS, Progress, batches, check_unsure, counted, run_all


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


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


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
    with folder_lock(site, shared=True):
        manifest = load_build(site)
        local = local_files(site, manifest)
        target.check()
        state = read_state(target)
        fresh = Freshness.open(settings, manifest)  # the refreshes since the build (portal/publish/freshness.py)
        try:
            fresh.overlay(target, state)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
                checked = check_unsure(pool, target, state, local, workers)
                plan = make_plan(local, state, checked)
                if not dry_run:
                    fresh.hold_back(plan, state)
                result.uploaded, result.deleted = len(plan.uploads), len(plan.deletes)
                result.unchanged, result.bytes = plan.unchanged, sum(f.size for f in plan.uploads)
                if not dry_run:
                    _apply(pool, target, plan, state, manifest.as_of, workers, progress)
                    fresh.after_upload(plan.uploads)
                    # Customers' own manifests do not know what this run wrote and deleted (docs/refresh.md).
                    forget_customer_manifests(target, [f.path for f in plan.uploads] + plan.deletes)
                    fresh.merged()
        finally:
            fresh.close()
    result.seconds = time.monotonic() - started
    return result


def open_target(location: str, site: Path, workers: int = DEFAULT_WORKERS) -> Target | None:
    """The configured target for publishing `site`, or None when it is the build folder itself (nothing to do).
    A folder inside the build folder, or containing it, is refused: each publish would copy the site into itself."""
    target = choose_target(location, workers)
    if target.local_root is None:
        return target
    root, built = target.local_root.resolve(), site.resolve()
    if root == built:
        return None
    if root.is_relative_to(built) or built.is_relative_to(root):
        raise PublishError(f"target {location}: must not be inside the build folder {site} or contain it")
    return target


def load_build(site: Path) -> Manifest:
    """The build's manifest, refusing a folder without a (readable) build."""
    if not (site / MANIFEST).is_file():
        raise PublishError(f"{site}: no build found ({MANIFEST} is missing); run `portal build` first")
    manifest = Manifest.load(site)
    if not manifest.files:
        raise PublishError(f"{site / MANIFEST}: unreadable or empty; run `portal build` again")
    return manifest


def local_files(site: Path, manifest: Manifest) -> dict[str, LocalFile]:
    """The manifest's files, refusing any path that could leave the site (a tampered or foreign manifest)."""
    files = {}
    for path, (sha, size, _customer) in manifest.files.items():
        if not is_site_path(path):
            raise PublishError(f"{site / MANIFEST}: {path!r} is not a path inside the site; run `portal build` again")
        files[path] = LocalFile(path, sha, size, site / path)
    return files


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
        target.write(JOURNAL, encode_journal(plan.journal))
        journal_written = True
    # Each phase completes before the next starts: a page goes up only once what it links to is there.
    for _phase, items in groupby(plan.uploads, key=lambda f: upload_phase(f.path)):
        run_all(pool, counted(target.put), items, workers * 4, tick, target.name, "uploading")
    if plan.write_manifest:
        target.write(REMOTE_MANIFEST, encode_manifest(plan.manifest, as_of))
    for _phase, paths in groupby(plan.deletes, key=upload_phase):
        run_all(pool, counted(target.delete), batches(list(paths), target.delete_batch), workers * 2, tick,
                target.name, "deleting")
    if journal_written or state.journal or not state.has_manifest:
        target.remove(JOURNAL)  # after a scan, a journal may be there that could not be read
