"""Rendering ONE customer from the store, in memory: what a refresh job publishes after a payment or a dispute.

It reads only that customer's rows (its data, money movements, disputes) and writes nothing: no output folder,
no whole-site manifest, so its cost does not grow with the site. The outputs are the ones the full build would
write for that customer (portal/build/pages.py renders both), so a nightly build that follows finds them equal.

The customer's page revision (portal/store/jobqueue.py) is read BEFORE its data: the pages are at least as new as
the revision they are labelled with, which is what the nightly publish relies on (docs/refresh.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from portal.balances import position
from portal.build import documents
from portal.build.pages import Output, PageRenderer
from portal.payments.history import history as payment_history
from portal.publish.objects import LocalFile
from portal.publish.targets import Target
from portal.store import jobqueue
from portal.store.approvals import approved_invoices
from portal.store.autopay import page_state as autopay_page_state
from portal.store.database import Store
from portal.store.disputes import dispute_states
from portal.store.plans import open_plans
from portal.store.tables import snapshots


@dataclass
class CustomerRender:
    customer_id: str
    key: str  # the customer's folder name (c/KEY/, docs/KEY/) at its current key version
    revision: int  # the page revision read before the data
    outputs: list[Output]  # pages and generated documents carry their bytes; supplied documents name a source
    export_folder: Path | None  # where supplied documents are (the folder of the newest import), if known
    as_of: str


def render_customer(renderer: PageRenderer, store: Store, customer_id: str) -> CustomerRender | None:
    """The customer's files as the build would write them, or None when the customer is not (or no longer)
    active: then it has no pages, and the nightly build removes what it had."""
    with store.begin() as conn:
        revision = jobqueue.revisions(conn, [customer_id]).get(customer_id, 0)
        source = position.inputs(conn, [customer_id])
        disputed = dispute_states(conn, customer_ids=[customer_id])
        saved = autopay_page_state(conn, [customer_id])
        paid = payment_history(conn, [customer_id])
        approved = approved_invoices(conn, [customer_id])
        plans = open_plans(conn, [customer_id])
        folder = conn.execute(select(snapshots.c.source).order_by(snapshots.c.snapshot_id.desc()).limit(1)).scalar()
    found = store.customer_data([customer_id])
    if not found:
        return None
    data = found[0]
    outputs = renderer.render(data, source, disputed, saved, payments=paid, approvals=approved, plans=plans)
    key = renderer.signer.customer_key(customer_id, data.key_version)
    return CustomerRender(customer_id, key, revision, outputs, Path(folder) if folder else None, data.as_of.isoformat())


def generated_pdf(renderer: PageRenderer, store: Store, target: Target, customer_id: str, key_version: int,
                  document_id: str, name: str) -> str | None:
    """The object name under docs/<customer key>/ to serve for a generated PDF a page links as `name`.

    The object the page named, when the target holds it (rendered by an earlier download). Otherwise the document
    as the store shows it now is rendered, kept on the target under the name of its content, and that name is
    returned: when the customer's data moved on since the page was built, the customer gets what is true now, never
    an older version. None when the customer (at that key version) no longer has this document to offer."""
    key = renderer.signer.customer_key(customer_id, key_version)
    if target.remote_sha(f"docs/{key}/{name}") is not None:
        return name
    with store.begin() as conn:
        source = position.inputs(conn, [customer_id])
        disputed = dispute_states(conn, customer_ids=[customer_id])
        paid = payment_history(conn, [customer_id]) if document_id.startswith("receipt:") else None
    found = store.customer_data([customer_id])
    if not found or found[0].key_version != key_version:
        return None
    planned: dict[str, documents.Planned] = {}
    renderer.render(found[0], source, disputed, planned=planned, payments=paid)
    doc = planned.get(document_id)
    if doc is None:
        return None
    path = f"docs/{key}/{doc.name}"
    if doc.name != name and target.remote_sha(path) is not None:
        return doc.name
    data = documents.render(renderer.settings, renderer.signer, customer_id, key_version, doc,
                            *renderer.pdf_translations(found[0].customer.locale))
    target.put(LocalFile(path, hashlib.sha256(data).hexdigest(), len(data), None, data))
    return doc.name
