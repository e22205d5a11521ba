"""The refresh job: re-render ONE customer from the store and publish its files to the target, after a payment
or a dispute changed what its pages show.

It needs no build folder and reads no whole-site manifest (portal/build/customer.py renders in memory,
portal/publish/customer.py publishes against the customer's own manifest), so it costs the same at 1,000 or
1,000,000 customers. It then records the revision it published, which keeps a nightly publish running meanwhile
from leaving an older page behind (portal/publish/freshness.py, docs/refresh.md).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from portal.build.customer import render_customer
from portal.build.pages import PageRenderer
from portal.core.config import Settings
from portal.publish.customer import CustomerPublished, publish_customer
from portal.publish.objects import LocalFile
from portal.publish.targets import Target, choose_target
from portal.store import jobqueue
from portal.store.database import Store

log = logging.getLogger(__name__)


@dataclass
class Refresher:
    """What refreshes reuse in one process: the page renderer (templates compiled once) and the target."""

    settings: Settings
    renderer: PageRenderer = field(init=False)
    target: Target = field(init=False)
    checked: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.renderer = PageRenderer(self.settings)
        self.target = choose_target(self.settings.target, workers=8)

    def refresh(self, store: Store, customer_id: str, force: bool = False) -> CustomerPublished | None:
        """Render and publish the customer; None when it is not an active customer (nothing to show). `force`:
        upload every file, whatever the customer's manifest on the target says (someone else wrote them)."""
        rendered = render_customer(self.renderer, store, customer_id)
        if rendered is None:
            return None
        files, keep = [], {}
        for output in rendered.outputs:
            if output.data is not None:
                files.append(LocalFile(output.path, output.sha256, output.size, None, output.data))
                continue
            # A supplied document: copied from the export folder when this machine has it; otherwise left as the
            # target holds it (documents only change with an import, which the nightly build publishes).
            source = rendered.export_folder / str(output.source) if rendered.export_folder else None
            if source is not None and source.is_file():
                files.append(LocalFile(output.path, output.sha256, output.size, source))
            else:
                keep[output.path] = output.sha256
        assets = [LocalFile(path, hashlib.sha256(data).hexdigest(), len(data), None, data)
                  for path, data in self.renderer.assets.files.items()]
        if not self.checked:  # once per process: a bucket that is not there fails here with one clear line
            self.target.check()
            self.checked = True
        result = publish_customer(self.target, customer_id, rendered.key, files, rendered.revision, rendered.as_of,
                                  keep=keep, shared=assets, trust_manifest=not force)
        with store.begin() as conn:
            jobqueue.record_published(conn, customer_id, rendered.revision)
        log.info("refreshed customer %s (revision %d): %s", customer_id, rendered.revision, result.summary())
        return result


def refresh_customer(settings: Settings, store: Store, customer_id: str) -> CustomerPublished | None:
    """One refresh with a fresh Refresher (tests, one-off calls); the worker keeps one per process."""
    return Refresher(settings).refresh(store, customer_id)
