"""A whole-site publish (nightly `portal publish`, or a shard's) and the per-customer refreshes, side by side.

Refreshes (portal/publish/customer.py) write a customer's objects while the main manifest is not told, and the
nightly build may have rendered that customer before a payment the refresh already shows. Three rules keep the
target right (docs/refresh.md, "With the nightly build"):

1. Know what a refresh put there. Customers refreshed since the main manifest was written are flagged in the
   store (`page_revisions.unmerged`); their own manifests are read and laid over the main one before comparing,
   so a page a refresh changed is never taken for unchanged (and an older build is not believed to match it).
2. Do not upload an older page. The build recorded each customer's page revision before reading its data
   (Manifest.revisions). A customer whose revision in the store has moved past it since is not uploaded: its
   pages are left as they are, and a refresh is queued for it, which renders the store as it is now.
3. Close the race. A change can commit while the upload runs; after uploading, customers whose revision moved
   past the build's get a refresh queued. It runs after this upload, reads the store after the change, and so is
   the last to write those pages.

Without a store to ask (a publish run where the build's database is not), there were no refreshes to reckon
with: the publish goes on as before.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect

from portal.core.config import Settings
from portal.publish.customer import key_of, read_customer_manifest
from portal.publish.manifest import Manifest
from portal.publish.objects import LocalFile
from portal.publish.plan import Plan, RemoteState
from portal.publish.targets import Target
from portal.store import jobqueue
from portal.store.database import Store

log = logging.getLogger(__name__)


@dataclass
class Freshness:
    store: Store | None
    built: dict[str, int]  # the build's revisions (customers not listed: 0)
    owners: dict[str, str]  # path -> customer, from the build's manifest
    keys: dict[str, str]  # customer -> its key (folder name), from the build's manifest
    seen: dict[str, int] = field(default_factory=dict)  # unmerged customers found -> revision their refresh published
    held_back: set[str] = field(default_factory=set)  # customers not uploaded: the store moved on since the build

    @classmethod
    def open(cls, settings: Settings, manifest: Manifest) -> Freshness:
        owners = {path: owner for path, (_sha, _size, owner) in manifest.files.items() if owner}
        keys = {cid: entry.get("key", "") for cid, entry in manifest.customers.items()}
        return cls(_queue_store(settings.database_url), dict(manifest.revisions), owners, keys)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def overlay(self, target: Target, state: RemoteState) -> None:
        """Rule 1: lay the refreshed customers' own manifests over the target's main manifest in `state`."""
        if self.store is None:
            return
        with self.store.begin() as conn:
            self.seen = jobqueue.unmerged(conn)
        by_customer: dict[str, list[str]] = {}
        for path, owner in self.owners.items():
            if owner in self.seen:
                by_customer.setdefault(owner, []).append(path)
        # One small object per customer refreshed since the last publish: read them many at a time (S3 latency).
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="customer-manifests") as pool:
            seen = [c for c in self.seen if self.keys.get(c)]  # a customer the build no longer has: nothing to lay
            manifests = dict(zip(seen, pool.map(lambda c: read_customer_manifest(target, c, self.keys[c]), seen),
                                 strict=True))
        # What the main manifest says of these customers' folders is replaced by what their own manifests say: a
        # refresh may have changed files there, added some and deleted others.
        known = {self.keys[c]: found for c, found in manifests.items() if found is not None}
        for path in [p for p in state.files if key_of(p) in known]:
            del state.files[path]
        for customer_id, found in manifests.items():
            if found is None:  # unreadable: check its paths one by one instead
                state.unsure.update(by_customer.get(customer_id, ()))
                continue
            for path, sha in found.files.items():
                if path not in state.unsure:
                    state.files[path] = sha

    def hold_back(self, plan: Plan, state: RemoteState) -> None:
        """Rule 2: drop the uploads of customers whose pages in the store are newer than the build's, keep what the
        target holds for them in the manifest to be written, and queue their refresh."""
        if self.store is None:
            return
        customers = {self.owners[f.path] for f in plan.uploads if f.path in self.owners}
        self.held_back = self._moved_on(customers)
        if not self.held_back:
            return
        kept: list[LocalFile] = []
        for item in plan.uploads:
            if self.owners.get(item.path) in self.held_back:
                plan.manifest.pop(item.path, None)
                if item.path in state.files:
                    plan.manifest[item.path] = state.files[item.path]
            else:
                kept.append(item)
        plan.unchanged += len(plan.uploads) - len(kept)
        plan.uploads = kept
        plan.write_manifest = True
        log.info("publish: %d customer(s) changed since the build; left to their refresh: %s", len(self.held_back),
                 ", ".join(sorted(self.held_back)[:10]))

    def after_upload(self, uploaded: list[LocalFile]) -> None:
        """Rule 3: queue a forced refresh for customers uploaded from a build older than the store now."""
        if self.store is None:
            return
        self._moved_on({self.owners[f.path] for f in uploaded if f.path in self.owners})

    def merged(self) -> None:
        """The main manifest written knows the refreshed customers' files now (unless refreshed again since)."""
        if self.store is not None and self.seen:
            with self.store.begin() as conn:
                jobqueue.mark_merged(conn, self.seen)

    def _moved_on(self, customers: set[str]) -> set[str]:
        if self.store is None:
            return set()
        return refresh_if_moved_on(self.store, self.built, customers)


def refresh_if_moved_on(store: Store, built: dict[str, int], customers: set[str]) -> set[str]:
    """The customers whose page revision in the store is past `built` (what a build rendered): a forced refresh is
    queued for each (without moving the revision: nothing changed, the pages only catch up). Returns them."""
    if not customers:
        return set()
    with store.begin() as conn:
        current = jobqueue.revisions(conn, sorted(customers))
        moved = {c for c in customers if current.get(c, 0) > built.get(c, 0)}
        now = datetime.now(UTC)
        for customer_id in sorted(moved):
            jobqueue.enqueue_refresh(conn, customer_id, now, bump=False, force=True)
    return moved


def _queue_store(url: str) -> Store | None:
    """The store, when it has the refresh queue's tables; None when there is no such database (nothing to ask)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and \
            not Path(url.removeprefix("sqlite:///")).is_file():
        return None  # do not create an empty database file just to find it empty
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            if inspect(conn).has_table("page_revisions"):
                return store
    except Exception as exc:  # noqa: BLE001 - no database to ask: there were no refreshes it could record
        log.warning("publish: database %s not reachable (%s); refreshed customers are not checked",
                    store.engine.url.render_as_string(hide_password=True), exc.__class__.__name__)
    store.close()
    return None
