"""Publishing a build that ran as N shards (e.g. an AWS Batch array job), then merging them once.

Each shard builds its customers into its own folder (`portal build DIR --shard I/N --skip-import`, after one
`portal import DIR`) and publishes it with `publish_shard`: it only uploads (new and changed files, in the
same safe order as publisher.py), never deletes, and records what it holds in its own manifest object
`.portal-manifest.shard-I-of-N.json.gz` next to the target's main manifest. Shards therefore never step on
each other, whatever order they run in.

When every shard is done, `reconcile` (one job, once) merges the shard manifests into the main manifest that
`portal publish` uses (same format and key), deletes ONCE what the old main manifest listed and no shard
lists any more (pages of removed customers or revoked keys), then removes the shard manifests. A reconcile
killed half-way is safe to run again: deletions are journalled exactly as publisher.py does it.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path

from portal.core.config import Settings
from portal.publish.customer import forget_customer_manifests
from portal.publish.freshness import Freshness
from portal.publish.manifest import (
    JOURNAL,
    REMOTE_MANIFEST,
    decode_journal,
    decode_manifest,
    encode_journal,
    encode_manifest,
    folder_lock,
)
from portal.publish.objects import LocalFile, PublishError
from portal.publish.plan import Plan, RemoteState, read_state, upload_phase
from portal.publish.publisher import PublishResult, load_build, local_files, open_target
from portal.publish.targets import Target, choose_target
from portal.publish.transfers import DEFAULT_WORKERS, Progress, batches, check_unsure, counted, run_all


def shard_manifest_name(index: int, count: int) -> str:
    """The object (under the target's prefix) where shard `index` of `count` records what it uploaded."""
    return f".portal-manifest.shard-{index}-of-{count}.json.gz"


def shard_journal_name(index: int, count: int) -> str:
    """Paths a shard run may have uploaded before it was killed (reconcile checks them)."""
    return f".portal-journal.shard-{index}-of-{count}.json.gz"


def _decode_shard(data: bytes) -> tuple[dict[str, str], str] | None:
    """(files, as_of) of a shard manifest, or None when unreadable."""
    files = decode_manifest(data)
    if files is None:
        return None
    return files, str(json.loads(gzip.decompress(data)).get("as_of", ""))


def _check_shard(index: int, count: int) -> None:
    if not 0 <= index < count:
        raise PublishError(f"shard {index}/{count}: the index must be between 0 and {count - 1}")


# --- one shard ---------------------------------------------------------------------------------------------------


def publish_shard(settings: Settings, site_dir: str | os.PathLike, index: int, count: int, *,
                  dry_run: bool = False, progress: Progress | None = None,
                  workers: int = DEFAULT_WORKERS) -> PublishResult:
    """Upload shard `index` of `count` (built into `site_dir` with shard=(index, count)) to `settings.target`.

    Uploads new and changed files only (compared with the target's main manifest and this shard's previous
    manifest), deletes nothing, then writes the shard's manifest; `progress(done, total)` as in publish().
    Raises PublishError when the folder holds another shard (or an unsharded build), or when an upload fails.
    """
    _check_shard(index, count)
    started = time.monotonic()
    site = Path(site_dir)
    target = open_target(settings.target, site, workers)
    if target is None:
        raise PublishError(f"target {settings.target}: a sharded build must be published to a target other than "
                           "its build folder")
    result = PublishResult(target.name, dry_run=dry_run)
    with folder_lock(site, shared=True):
        manifest = load_build(site)
        if manifest.shard != f"{index}/{count}":
            held = f"shard {manifest.shard}" if manifest.shard else "an unsharded build"
            raise PublishError(f"{site}: holds {held}, not shard {index}/{count}; build it with --shard "
                               f"{index}/{count}")
        local = local_files(site, manifest)
        target.check()
        state = read_state(target)
        previous = target.read(shard_manifest_name(index, count))
        decoded = _decode_shard(previous) if previous is not None else None
        # What this shard uploaded last time (a rerun after a failure) is there even if the main manifest
        # does not know it yet.
        files = {**state.files, **(decoded[0] if decoded else {})}
        view = RemoteState(files, unsure=set(state.unsure), sizes=state.sizes, has_manifest=state.has_manifest,
                           journal=state.journal)
        fresh = Freshness.open(settings, manifest)  # refreshes since the build (portal/publish/freshness.py)
        try:
            fresh.overlay(target, view)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish-shard") as pool:
                checked = check_unsure(pool, target, view, local, workers)
                uploads = [item for path, item in local.items()
                           if (checked.get(path) if path in view.unsure else view.files.get(path)) != item.sha256]
                uploads.sort(key=lambda f: (upload_phase(f.path), f.path))
                plan = Plan(uploads, [], len(local) - len(uploads), {p: f.sha256 for p, f in local.items()}, True,
                            set())
                if not dry_run:
                    fresh.hold_back(plan, view)
                result.uploaded, result.unchanged = len(plan.uploads), plan.unchanged
                result.bytes = sum(f.size for f in plan.uploads)
                if not dry_run:
                    _upload(pool, target, plan.uploads, index, count, workers, progress)
                    fresh.after_upload(plan.uploads)  # (the customers' own manifests: reconcile forgets them)
                    target.write(shard_manifest_name(index, count), encode_manifest(plan.manifest, manifest.as_of))
                    if plan.uploads:
                        target.remove(shard_journal_name(index, count))
        finally:
            fresh.close()
    result.seconds = time.monotonic() - started
    return result


def _upload(pool: ThreadPoolExecutor, target: Target, uploads: list[LocalFile], index: int, count: int,
            workers: int, progress: Progress | None) -> None:
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(uploads))

    tick(0)
    if not uploads:
        return
    # Journal first: if this run dies half-way, reconcile still knows which objects it may have created.
    name = shard_journal_name(index, count)
    old = target.read(name)
    journal = (decode_journal(old) or set()) if old is not None else set()
    target.write(name, encode_journal(journal | {f.path for f in uploads}))
    for _phase, items in groupby(uploads, key=lambda f: upload_phase(f.path)):
        run_all(pool, counted(target.put), items, workers * 4, tick, target.name, "uploading")


# --- merging --------------------------------------------------------------------------------------------------


def reconcile(settings: Settings, count: int, *, dry_run: bool = False,
              workers: int = DEFAULT_WORKERS) -> PublishResult:
    """Merge the `count` shard manifests into the target's main manifest, delete stale objects once, and
    remove the shard manifests.

    Stale: listed by the old main manifest (or found by a scan when it is missing, or left in a journal) and
    by no shard. Raises PublishError, changing nothing, when a shard manifest is missing or unreadable, when
    two shards disagree about a file, or when the shards were built from different imports (as_of).
    """
    if count < 1:
        raise PublishError(f"shard count {count} must be at least 1")
    started = time.monotonic()
    target = choose_target(settings.target, workers)  # no build folder to compare it with
    result = PublishResult(target.name, dry_run=dry_run)
    target.check()
    merged: dict[str, str] = {}
    as_ofs: set[str] = set()
    journal: set[str] = set()
    missing = []
    for index in range(count):
        data = target.read(shard_manifest_name(index, count))
        decoded = _decode_shard(data) if data is not None else None
        if decoded is None:
            missing.append(f"{index}/{count}")
            continue
        files, as_of = decoded
        as_ofs.add(as_of)
        for path, sha in files.items():
            if merged.setdefault(path, sha) != sha:
                raise PublishError(f"{target.name}: shards disagree about {path} (built from different templates "
                                   "or settings?); rebuild and publish every shard")
        left = target.read(shard_journal_name(index, count))
        journal |= (decode_journal(left) or set()) if left is not None else set()
    if missing:
        raise PublishError(f"{target.name}: shard(s) {', '.join(missing)} not published (no readable shard "
                           "manifest); publish them first, nothing was changed")
    if len(as_ofs) > 1:
        raise PublishError(f"{target.name}: the shards were built from different imports (as_of "
                           f"{', '.join(sorted(as_ofs))}); rebuild every shard after one `portal import`")
    state = read_state(target)
    stale = ((set(state.files) | state.unsure | state.journal | journal) - set(merged))
    deletes = sorted(stale, key=lambda p: (-upload_phase(p), p))
    plan = Plan(uploads=[], deletes=deletes, unchanged=len(merged), manifest=merged, write_manifest=True,
                journal=state.journal | stale)
    result.deleted, result.unchanged = len(plan.deletes), plan.unchanged
    if not dry_run:
        _merge(target, plan, state, as_ofs.pop() if as_ofs else "", count, workers)
    result.seconds = time.monotonic() - started
    return result


def _merge(target: Target, plan: Plan, state: RemoteState, as_of: str, count: int, workers: int) -> None:
    if plan.deletes:
        # A run killed after the new manifest is written still leaves the stale paths findable.
        target.write(JOURNAL, encode_journal(plan.journal))
    target.write(REMOTE_MANIFEST, encode_manifest(plan.manifest, as_of))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        for _phase, paths in groupby(plan.deletes, key=upload_phase):
            run_all(pool, counted(target.delete), batches(list(paths), target.delete_batch), workers * 2,
                    lambda _n: None, target.name, "deleting")
    # The customers whose folders the shards wrote or this deleted: their own manifests no longer say what is there
    # (docs/refresh.md).
    forget_customer_manifests(target, [p for p, sha in plan.manifest.items() if state.files.get(p) != sha]
                              + plan.deletes)
    if plan.deletes or state.journal or not state.has_manifest:
        target.remove(JOURNAL)
    # Last: until here a rerun of reconcile finds every shard manifest and does the same again.
    for index in range(count):
        target.remove(shard_journal_name(index, count))
        target.remove(shard_manifest_name(index, count))
