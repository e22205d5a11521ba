"""The build: export -> store snapshot -> pages rendered in parallel -> output folder + manifest.

Only files whose content changed are written (atomically: temp file + rename), files of customers or
invoices that disappeared are removed, and a customer whose data, key and templates are unchanged since
the last build is not rendered at all (its fingerprint is in the manifest). Every page path is known
before anything is written, and the build refuses to go on if two outputs would share a path.

This module holds the build's steps (read and import the export, decide who to render, render, write the
manifest, remove what disappeared). The rendering itself runs in worker processes (portal/build/workers.py), the
files are written by portal/build/output.py, and the manifest format is shared with publishing
(portal/publish/manifest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from portal.balances import journal
from portal.build.output import prune_empty_parents, write_if_changed
from portal.build.pages import customer_paths
from portal.build.workers import render_chunks
from portal.core.config import Settings, is_s3_url
from portal.core.errors import BuildError
from portal.core.gcpause import existing_objects_frozen
from portal.core.signing import Signer
from portal.core.templating import load_assets, render_fingerprint
from portal.export import reader as ledger_module
from portal.export.model import Ledger
from portal.export.reader import read_export
from portal.publish.freshness import refresh_if_moved_on
from portal.publish.manifest import LOCK, Manifest, atomic_write, folder_lock
from portal.store import jobqueue
from portal.store.database import Store
from portal.store.disputes import dispute_digests
from portal.store.importer import ImportSummary
from portal.store.payments import payment_digests
from portal.store.snapshotview import SnapshotView

EXPORT_STATE = ".export.json"  # the fingerprint of the export last built into the folder, and its snapshot
CHUNK = 100  # customers per worker task: big enough to amortise the queries, small enough to balance


@dataclass
class BuildResult:
    written: Counter = field(default_factory=Counter)  # kind ("pages", "documents", "assets") -> count
    unchanged: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    written_paths: list[str] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)
    export_unchanged: bool = False  # the export was the one last built: neither re-read nor re-imported
    customers_rendered: int = 0
    customers_skipped: int = 0
    imported: ImportSummary | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def part(kind: str) -> str:
            return (f"{kind}: {self.written[kind]} written, {self.unchanged[kind]} unchanged, "
                    f"{self.removed[kind]} removed")
        return "; ".join(part(k) for k in ("pages", "documents", "assets"))


def kind_of(path: str) -> str:
    return "pages" if path.startswith("c/") else "documents" if path.startswith("docs/") else "assets"


def shard_of(customer_id: str, count: int) -> int:
    """The shard (0 .. count-1) a customer belongs to. SHA-256, not hash(): the same on every machine and
    in every process (Python salts str hashes per process), so separate build jobs agree."""
    if count < 1:
        raise ValueError(f"shard count {count} must be at least 1")
    return int.from_bytes(hashlib.sha256(customer_id.encode("utf-8")).digest()[:8], "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """`"I/N"` (as the CLI takes it) -> (I, N), refusing anything but 0 <= I < N."""
    index, sep, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        raise BuildError(f"shard {text!r}: use I/N, e.g. 0/4") from None
    if not sep or not 0 <= shard[0] < shard[1]:
        raise BuildError(f"shard {text!r}: use I/N with 0 <= I < N")
    return shard


def build(export_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: Settings,
          store: Store | None = None, workers: int | None = None, *, shard: tuple[int, int] | None = None,
          skip_import: bool = False) -> BuildResult:
    """Validate the export (raising before anything is written), import it, render the site.

    `shard=(I, N)`: render only the customers of shard I of N (see render_site). `skip_import`: the export
    was already imported (`import_only`, once, before the shards run); the folder is still needed for the
    supplied documents it holds.
    """
    fingerprint = "" if skip_import else export_fingerprint(export_dir, settings)
    if fingerprint and _export_state(Path(out_dir)).get("fingerprint") == fingerprint:
        ledger = None  # the very export this folder was last built from: checked and imported already
    else:
        ledger = None if skip_import else read_export(export_dir, settings)
    # The ledger is over a million objects that live until the end: left to the collector, they were walked
    # again in its next few passes (0.3 s of the serial part after the read at 100,000 invoices), for nothing.
    with existing_objects_frozen():
        return _build(export_dir, out_dir, settings, store, workers, shard, fingerprint, ledger)


def _build(export_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: Settings, store: Store | None,
           workers: int | None, shard: tuple[int, int] | None, fingerprint: str, ledger: Ledger | None
           ) -> BuildResult:
    own_store = store is None
    store = store or Store(settings.database_url)
    try:
        store.migrate()
        if ledger is None and fingerprint and \
                _export_state(Path(out_dir)).get("snapshot_id") != store.latest_snapshot_id():
            # Someone imported another export into this store since: read this one again after all.
            ledger = read_export(export_dir, settings)
        if ledger is None:
            result = render_site(settings, store, out_dir, export_folder=Path(export_dir).resolve(),
                                 workers=workers, shard=shard)
        else:
            result = _import_and_render(settings, store, Path(out_dir), ledger, workers, shard)
        snapshot = store.latest_snapshot_id()
        result.export_unchanged = bool(fingerprint) and ledger is None
        if ledger is not None:
            result.warnings[:0] = ledger.warnings
        state = {"fingerprint": fingerprint, "snapshot_id": snapshot}
        if fingerprint and _export_state(Path(out_dir)) != state:
            atomic_write(Path(out_dir) / EXPORT_STATE, json.dumps(state).encode())
        return result
    finally:
        if own_store:
            store.close()


def export_fingerprint(export_dir: str | os.PathLike, settings: Settings) -> str:
    """Changes whenever the export could read differently: the bytes of its CSV and JSON files, the names,
    sizes and modification times of its other files (documents), the settings and the code that check it.
    Equal fingerprints let a rebuild skip validating and importing an export it already took."""
    folder = Path(export_dir)
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256(repr((settings.default_currency, settings.default_locale,
                                  settings.allow_foreign_currency)).encode())
    for path in ledger_module.READER_FILES:  # the code that checks it: every file of the reader
        digest.update(path.read_bytes())
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        try:
            if path.parent == folder and path.suffix.lower() in (".csv", ".json"):
                digest.update(b"C%s\0%s" % (relative.encode(), hashlib.sha256(path.read_bytes()).digest()))
            elif path.is_file():
                stat = path.stat()
                digest.update(f"F{relative}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        except OSError:
            return ""  # unreadable or a broken link: let the full check report it
    return digest.hexdigest()


def _export_state(out: Path) -> dict:
    try:
        return json.loads((out / EXPORT_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def import_only(export_dir: str | os.PathLike, settings: Settings, store: Store | None = None) -> BuildResult:
    """Validate the export and import it into the store, rendering nothing (before a sharded build).

    Returns a BuildResult with only `imported` and `warnings` set. Raises ExportInvalid before the store is
    touched when the export is invalid.
    """
    ledger = read_export(export_dir, settings)
    own_store = store is None
    store = store or Store(settings.database_url)
    try:
        store.migrate()
        summary = store.import_snapshot(ledger, source=str(ledger.folder))
        return BuildResult(imported=summary, warnings=list(ledger.warnings))
    finally:
        if own_store:
            store.close()


def render_site(settings: Settings, store: Store, out_dir: str | os.PathLike, export_folder: Path | None = None,
                only: set[str] | None = None, force: bool = False, workers: int | None = None,
                shard: tuple[int, int] | None = None) -> BuildResult:
    """Bring the output folder up to date with the store. `only` limits re-rendering to some customers
    (the webhook uses it after a payment); everyone else's files are kept as the manifest lists them.

    `shard=(I, N)`: the folder holds shard I of N: only customers with shard_of(id, N) == I are rendered
    and listed in its manifest (plus the shared assets, which every shard renders), and only their files
    are ever removed. Each shard needs its own folder; portal.publish.shards publishes and merges them.
    """
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise BuildError(f"shard {shard[0]}/{shard[1]}: the index must be between 0 and {shard[1] - 1}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _render_site(settings, store, out, export_folder, only, force, workers, shard)


def _import_and_render(settings: Settings, store: Store, out: Path, ledger: Ledger, workers: int | None,
                       shard: tuple[int, int] | None) -> BuildResult:
    """Import `ledger` and render the site from it at the same time: the render workers take the customers'
    data from the ledger in memory (portal.store.snapshotview, identical to what the store returns once the import
    commits) while this process writes the store. Atomic all the same: until the import has committed, the
    workers only create files the folder did not have and write replacements beside their targets; if the
    import fails, those are deleted and the folder is as it was."""
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise BuildError(f"shard {shard[0]}/{shard[1]}: the index must be between 0 and {shard[1] - 1}")
    # Invoice hashes: those of customers the folder already holds now (their digests decide what to render),
    # the rest while the workers render (who compute their new customers' own).
    view = SnapshotView(ledger, {}, store.key_versions())
    imported: list[ImportSummary] = []

    def run_import() -> None:
        hashes = {iid: view.invoice_hash(invoice) for iid, invoice in ledger.invoices.items()}
        imported.append(store.import_snapshot(ledger, source=str(ledger.folder), hashes=hashes))

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(out):
            result = _render_site(settings, store, out, ledger.folder, None, False, workers, shard, view=view,
                                  run_import=run_import)
    except BaseException:
        if created and not imported:  # a folder this build made for nothing: leave no trace
            (out / LOCK).unlink(missing_ok=True)
            prune_empty_parents(out, out.parent)
        raise
    result.imported = imported[0]
    return result


def _render_site(settings: Settings, store: Store, out: Path, export_folder: Path | None, only: set[str] | None,
                 force: bool, workers: int | None, shard: tuple[int, int] | None = None,
                 view: SnapshotView | None = None, run_import: Callable[[], None] | None = None) -> BuildResult:
    """`view` and `run_import`: render from the view while run_import() imports it (see _import_and_render)."""
    result = BuildResult()
    old = Manifest.load(out)
    signer = Signer(settings)
    fingerprint = render_fingerprint(settings)
    # Page revisions first, before any data: the pages are then at least as new as the revision they are labelled
    # with, which the publish relies on (portal/publish/freshness.py).
    with store.begin() as conn:
        revisions = jobqueue.revisions(conn)
        # When this folder is the target itself, refreshes wrote into it behind the manifest's back: re-render
        # those customers, trusting none of their files (portal/jobs/refresh.py).
        refreshed = jobqueue.unmerged(conn) if _is_target(settings, out) else {}
    state = store.customer_states() if view is None else view.states(digest_of=old.customers.keys())
    with store.begin() as conn:  # payments and disputes: tables an import does not touch
        paid = payment_digests(conn)  # a payment changes what the pages show: it must change the fingerprint
        for cid, digest in dispute_digests(conn).items():  # and so does a dispute's state
            paid[cid] = paid.get(cid, "") + digest
        for cid, digest in journal.digests(conn).items():  # and every money movement (a second part refund)
            paid[cid] = paid.get(cid, "") + digest
    as_of = store.latest_as_of() if view is None else view.as_of
    as_of_text = as_of.isoformat() if as_of else ""

    # Every page path is decided here, before anything is written.
    keys = {cid: signer.customer_key(cid, s.key_version) for cid, s in state.items()}
    page_owner: dict[str, str] = {}
    for cid, s in state.items():
        for path in customer_paths(keys[cid], s.invoice_ids):
            if path in page_owner:
                raise BuildError(f"two outputs would be written to {path} (customers {page_owner[path]!r} and "
                                 f"{cid!r}); nothing was written")
            page_owner[path] = cid
    # A shard still checks every customer's paths above (a collision across shards is one too), then keeps
    # only its own customers.
    if shard is not None:
        state = {cid: s for cid, s in state.items() if shard_of(cid, shard[1]) == shard[0]}

    new = Manifest(as_of=as_of_text, shard=f"{shard[0]}/{shard[1]}" if shard else "",
                   revisions={cid: r for cid, r in revisions.items() if cid in state and r})
    assets = load_assets(settings)
    for path, data in assets.files.items():
        new.files[path] = (hashlib.sha256(data).hexdigest(), len(data), "")
    if run_import is None:  # else once the import has committed (below)
        _write_assets(out, assets.files, new, old, result)

    old_by_customer = _files_by_customer(old)
    dirty: list[str] = []
    # Customers the folder has not held yet: their digests need every invoice hash, which the import computes
    # anyway, so their fingerprints are completed once it has (and not again in each worker).
    pending: dict[str, tuple[str, str]] = {}  # customer -> its fingerprint's text around the digest
    for cid, s in state.items():
        head, tail = f"{fingerprint}|", f"|{paid.get(cid, '')}|{keys[cid]}|{as_of_text}"
        if s.digest:
            customer_fp = customer_fingerprint(head, s.digest, tail)
        else:  # not in the folder yet: rendered in any case, its fingerprint completed after the import
            customer_fp, pending[cid] = "", (head, tail)
        new.customers[cid] = {"key": keys[cid], "fingerprint": customer_fp}
        unchanged = old.customers.get(cid) == new.customers[cid] and (only is None or cid not in only) and \
            cid not in refreshed
        if unchanged and not force:
            files = old_by_customer.get(cid)
            if files and all(os.path.isfile(f"{out}/{p}") for p in files):  # str paths: 230k checks add up
                for p in files:
                    new.files[p] = old.files[p]
                    result.unchanged[kind_of(p)] += 1
                result.customers_skipped += 1
                continue
        dirty.append(cid)

    tasks = [(chunk, {p: old.files[p][0] for cid in chunk if cid not in refreshed
                      for p in old_by_customer.get(cid, ())})
             for chunk in _chunks(dirty, CHUNK)]
    after_import = run_import is not None  # the assets and the pending fingerprints wait for the import
    for rendered in render_chunks(tasks, settings, out, export_folder, workers, view, run_import):
        if after_import:  # render_chunks returns its first result only once the import has committed
            _complete_after_import(out, assets.files, new, old, result, view, pending)
            after_import = False
        for cid, outputs in rendered:
            result.customers_rendered += 1
            for path, digest, size, written, temp in outputs:
                if temp is not None:
                    os.replace(temp, f"{out}/{path}")
                if path in new.files and new.files[path][0] != digest:
                    raise BuildError(f"two different files were rendered for {path}")
                new.files[path] = (digest, size, cid)
                if written:
                    result.written[kind_of(path)] += 1
                    result.written_paths.append(path)
                else:
                    result.unchanged[kind_of(path)] += 1
    if after_import:  # nothing was rendered: render_chunks has imported and returned
        _complete_after_import(out, assets.files, new, old, result, view, pending)

    for path in sorted(set(old.files) - set(new.files)):
        owner = old.files[path][2]
        if shard is not None and owner and shard_of(owner, shard[1]) != shard[0]:
            continue  # another shard's customer (the folder held another build): not ours to remove
        target = out / path
        if target.is_file():
            target.unlink()
        result.removed[kind_of(path)] += 1
        result.removed_paths.append(path)
        prune_empty_parents(target.parent, out)
    if new != old:
        new.save(out)
    if refreshed or _is_target(settings, out):
        # The folder is what readers get: a customer whose pages changed in the store while this build rendered
        # it gets a refresh, which then writes last (portal/publish/freshness.py, rule 3).
        refresh_if_moved_on(store, new.revisions, set(dirty))
        with store.begin() as conn:
            jobqueue.mark_merged(conn, refreshed)
    return result


def _is_target(settings: Settings, out: Path) -> bool:
    """Whether the build folder is the publish target itself (the default: nothing to publish)."""
    return not is_s3_url(settings.target) and Path(settings.target).resolve() == out.resolve()


def customer_fingerprint(head: str, digest: str, tail: str) -> str:
    """What the manifest records per customer: render fingerprint, data digest, payments, key, export time."""
    return hashlib.sha256(f"{head}{digest}{tail}".encode()).hexdigest()


def _complete_after_import(out: Path, assets: dict[str, bytes], new: Manifest, old: Manifest, result: BuildResult,
                           view: SnapshotView | None, pending: dict[str, tuple[str, str]]) -> None:
    _write_assets(out, assets, new, old, result)
    if view is not None:  # the import has hashed every invoice into the view: each digest is one more hash
        for cid, (head, tail) in pending.items():
            new.customers[cid]["fingerprint"] = customer_fingerprint(head, view.digest(cid), tail)


def _write_assets(out: Path, files: dict[str, bytes], new: Manifest, old: Manifest, result: BuildResult) -> None:
    for path, data in files.items():
        if write_if_changed(out, path, data, new.files[path][0], old.files.get(path)):
            result.written["assets"] += 1
            result.written_paths.insert(result.written["assets"] - 1, path)  # assets first, as always
        else:
            result.unchanged["assets"] += 1


def _files_by_customer(manifest: Manifest) -> dict[str, list[str]]:
    owned: dict[str, list[str]] = {}
    for path, (_sha, _size, cid) in manifest.files.items():
        if cid:
            owned.setdefault(cid, []).append(path)
    return owned


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
