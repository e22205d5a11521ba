"""Rendering customers in parallel: a pool of forked worker processes, each with its own store connection.

Workers are forked, so they inherit the imported modules, the templates and (during an import) the in-memory
view of the export: starting them costs milliseconds. Each renders a chunk of customers and writes their files
itself (portal/build/output.py); the parent only collects (path, sha256, size) for the manifest. While an import
has not committed (`defer`), a worker replaces no existing file: it writes the replacement beside it and the
parent renames it once the import succeeded, or `discard` removes it when the import failed.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

from portal.balances import position
from portal.build.output import prune_empty_parents, write_page
from portal.build.pages import Output, PageRenderer
from portal.core.config import Settings
from portal.core.errors import BuildError
from portal.core.gcpause import existing_objects_frozen
from portal.payments.history import history as payment_history
from portal.store import contactchanges
from portal.store.approvals import approved_invoices
from portal.store.autopay import page_state as autopay_page_state
from portal.store.database import Store
from portal.store.disputes import dispute_states
from portal.store.plans import open_plans
from portal.store.snapshotview import SnapshotView


def render_chunks(tasks: list, settings: Settings, out: Path, export_folder: Path | None, workers: int | None,
                  view: SnapshotView | None = None, run_import: Callable[[], None] | None = None) -> Iterator[list]:
    """Render the tasks' customers, yielding each task's outputs in order. With `run_import`, the workers
    start first and this process runs the import meanwhile; nothing is yielded before it has committed."""
    count = workers or settings.build_workers or os.cpu_count() or 1
    if count == 1 or len(tasks) <= 1:
        if run_import is not None:  # no second process to overlap with: import first, then write as usual
            run_import()
        # In this process (a one-customer re-render in the webhook, a one-worker build): freeze only while
        # rendering, then hand the objects back to the collector, or a long-lived process would keep every
        # object of every re-render out of the collector's reach for good.
        init_worker(settings, out, export_folder, view, False, freeze=False)
        try:
            with existing_objects_frozen():
                for task in tasks:
                    yield render_chunk(task)
        finally:
            close_worker()
        return
    # fork: workers inherit the imported modules (and the view), so starting them costs milliseconds.
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=min(count, len(tasks)), mp_context=context, initializer=init_worker,
                             initargs=(settings, out, export_folder, view, run_import is not None)) as pool:
        futures = [pool.submit(render_chunk, task) for task in tasks]
        if run_import is not None:
            try:
                run_import()
            except BaseException:
                for future in futures:
                    future.cancel()
                wait(futures)
                for future in futures:
                    if not future.cancelled() and future.exception() is None:
                        discard(out, future.result())
                raise
        for future in futures:
            yield future.result()


def discard(out: Path, rendered: list) -> None:
    """Undo what a worker wrote before the import failed: files that were new, and unused replacements."""
    for _cid, outputs in rendered:
        for path, _digest, _size, written, temp in outputs:
            if temp is not None:
                os.unlink(temp)
            elif written:
                target = out / path
                target.unlink(missing_ok=True)
                prune_empty_parents(target.parent, out)


_worker: dict = {}


def init_worker(settings: Settings, out: Path, export_folder: Path | None, view: SnapshotView | None = None,
                 defer: bool = False, freeze: bool = True) -> None:
    """`view`: take the customers' data from it instead of the store. `defer`: the import has not committed
    yet, so replace no existing file: write the replacement beside it and let the parent rename it."""
    store = Store(settings.database_url)
    _worker.update(store=store, renderer=PageRenderer(settings), out=out, export_folder=export_folder, view=view,
                   defer=defer)
    # Rendering allocates many short-lived objects; keeping the long-lived ones (modules, templates) out of
    # the collector's scans made PDF rendering 25% faster. A pool worker ends with the build; `_run` freezes
    # for the duration only when it renders in its own process (freeze=False here).
    if freeze:
        gc.freeze()


def close_worker() -> None:
    store = _worker.pop("store", None)
    if store is not None:
        store.close()


def render_chunk(task: tuple[list[str], dict[str, str]]) -> list:
    """Render and write some customers: [(customer id, [(path, sha256, size, written, temp)])]."""
    customer_ids, old_hashes = task
    store: Store = _worker["store"]
    renderer: PageRenderer = _worker["renderer"]
    out: Path = _worker["out"]
    view: SnapshotView | None = _worker["view"]
    defer: bool = _worker["defer"]
    results = []
    with store.begin() as conn:  # what moves the customers' positions (portal/balances/position.py)
        source = position.inputs(conn, customer_ids)
        disputed = dispute_states(conn, customer_ids=customer_ids)
        saved = autopay_page_state(conn, customer_ids)
        paid = payment_history(conn, customer_ids)
        approved = approved_invoices(conn, customer_ids)
        plans = open_plans(conn, customer_ids)
        # The export's contacts with the AP address changes customers confirmed (the store applies them itself).
        confirmed = contactchanges.by_customer(conn, customer_ids) if view is not None else {}
    for data in (store.customer_data(customer_ids) if view is None else view.customer_data(customer_ids)):
        outputs = []
        if data.customer.customer_id in confirmed:
            data.contacts[:] = contactchanges.overlay(data.contacts, confirmed[data.customer.customer_id])
        try:
            rendered = renderer.render(data, source, disputed, saved, payments=paid, approvals=approved, plans=plans)
        except Exception as exc:  # noqa: BLE001 - re-raised as a picklable error naming the customer
            raise BuildError(f"customer {data.customer.customer_id!r}: rendering failed: "
                             f"{exc.__class__.__name__}: {exc}") from None
        for item in rendered:
            written, temp = materialise(out, item, old_hashes.get(item.path), _worker["export_folder"], defer)
            outputs.append((item.path, item.sha256, item.size, written, temp))
        results.append((data.customer.customer_id, outputs))
    return results


def materialise(out: Path, item: Output, old_hash: str | None, export_folder: Path | None, defer: bool = False
                 ) -> tuple[bool, str | None]:
    """Write (or copy) one output unless the folder already holds it. Returns (written, temp): temp is the file
    to rename onto the output later when `defer` kept an existing file from being replaced now."""
    path = f"{out}/{item.path}"  # a str, not a Path: this runs once per page
    if old_hash == item.sha256 and os.path.isfile(path):
        return False, None
    if item.data is not None:
        return True, write_page(path, item.data, known=old_hash is not None, defer=defer)
    # A supplied document: content-addressed, so a file already at that path is the same file.
    target = out / item.path
    if target.is_file():
        return False, None
    if export_folder is None:
        raise BuildError(f"{item.path}: the document is not in the output folder and no export folder was given")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(export_folder / str(item.source), temp)
    os.replace(temp, target)
    return True, None
