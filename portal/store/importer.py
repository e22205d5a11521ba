"""Importing a ledger (one export, portal/export/model.py) into the store, in one transaction.

The export-derived tables follow the ledger: customers and invoices are updated in place (a customer or invoice
that left the export is kept, marked inactive or closed, so its history stays reportable), invoice lines are
rewritten for the invoices that changed, contacts, credits and documents are replaced whole, and a `snapshots`
row records the import. Events, customer keys and everything the webhook records are never touched.

Then, in the same transaction, the derived tables follow what the import changed (portal/store/derived.py: the
stored positions, then the staff's receipt lines), so no reader ever sees invoices without their positions.

An invoice's content hash (`invoice_hash`) says whether anything the export says about it changed; equal hashes
mean nothing to re-send or re-render. The build computes them once (`invoice_hashes`) for the import and for its
in-memory view of the snapshot (portal/store/snapshotview.py), which must agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from portal.export.model import Invoice, InvoiceLine, Ledger
from portal.store import contactchanges, derived
from portal.store.bulk import bulk_insert, chunks, update_by
from portal.store.tables import contacts, credits, customers, documents, invoice_lines, invoices, snapshots


@dataclass(frozen=True)
class ImportSummary:
    snapshot_id: int
    customers: int
    invoices: int
    new: int
    changed: int
    closed: int


def invoice_hash(invoice: Invoice, lines: Iterable[InvoiceLine]) -> str:
    """A stable fingerprint of an invoice as exported; equal hashes mean nothing to re-send or re-render."""
    payload = [
        invoice.customer_id, invoice.number, invoice.issue_date.isoformat(), invoice.due_date.isoformat(),
        invoice.amount, invoice.balance, invoice.currency, invoice.po_number, invoice.terms,
        invoice.description,
        [[ln.description, _dec(ln.quantity), _dec(ln.unit_price), ln.amount] for ln in lines],
    ]
    return hashlib.sha256(_COMPACT_JSON.encode(payload).encode()).hexdigest()


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps(..., separators=...), minus a new encoder per call


def invoice_hashes(ledger: Ledger) -> dict[str, str]:
    """invoice id -> invoice_hash, for every invoice of the ledger. Computed once per build: the import and
    the build's in-memory view of the snapshot (portal.store.snapshotview) both need them."""
    lines = ledger.lines
    return {iid: invoice_hash(inv, lines.get(iid, ())) for iid, inv in ledger.invoices.items()}


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def import_ledger(conn: Connection, ledger: Ledger, source: str = "", hashes: dict[str, str] | None = None
                  ) -> ImportSummary:
    """Make the store reflect `ledger` in the caller's transaction (`Store.import_snapshot` opens it), keeping
    events, keys and closed invoices, then bring the derived tables along. `hashes`: the ledger's
    invoice_hashes when the caller already computed them."""
    now = datetime.now(UTC)
    if hashes is None:
        hashes = invoice_hashes(ledger)
    if conn.dialect.name == "sqlite":
        # The default 2 MB page cache thrashes while 100k invoices go into their indexes.
        conn.exec_driver_sql("PRAGMA cache_size=-65536")
    old_as_of = conn.execute(select(snapshots.c.as_of).order_by(snapshots.c.snapshot_id.desc()).limit(1)).scalar()
    renamed = _import_customers(conn, ledger, now)
    new, changed, closed, changed_ids, closed_ids = _import_invoices(conn, ledger, now, hashes)
    conn.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(
        select(invoices.c.invoice_id).where(invoices.c.is_open.is_(False)))))
    for chunk in chunks(sorted(changed_ids), 500):
        conn.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(chunk)))
    bulk_insert(conn, invoice_lines, ("invoice_id", "line_no", "description", "quantity", "unit_price", "amount"),
                [(ln.invoice_id, ln.line_no, ln.description, _dec(ln.quantity), _dec(ln.unit_price), ln.amount)
                 for invoice_id in sorted(changed_ids) for ln in ledger.lines.get(invoice_id, ())])
    # Contacts, credits and documents are small and carry no history: replaced whole.
    conn.execute(delete(contacts))
    bulk_insert(conn, contacts, ("customer_id", "contact_id", "email", "name", "role"),
                [(c.customer_id, c.contact_id, c.email, c.name, c.role) for c in ledger.contacts])
    contactchanges.absorb(conn, ledger.contacts, now)  # the ERP now lists what the customers changed here
    conn.execute(delete(credits))
    bulk_insert(conn, credits, ("credit_id", "customer_id", "number", "issue_date", "amount", "balance",
                                "currency", "description"),
                [(c.credit_id, c.customer_id, c.number, c.issue_date, c.amount, c.balance, c.currency,
                  c.description) for c in ledger.credits.values()])
    conn.execute(delete(documents))
    bulk_insert(conn, documents, ("document_id", "customer_id", "invoice_id", "kind", "title", "file",
                                  "sha256", "size", "content_type"),
                [(d.document_id, d.customer_id, d.invoice_id, d.kind, d.title, d.file, d.sha256, d.size,
                  d.content_type) for d in ledger.documents.values()])
    snapshot_id = conn.execute(insert(snapshots).values(
        as_of=ledger.as_of, imported_at=now, source=source, customers=len(ledger.customers),
        invoices=len(ledger.invoices), invoices_new=new, invoices_changed=changed,
        invoices_closed=closed)).inserted_primary_key[0]
    # What each invoice owes now follows the new balances and the new as_of, then the staff export's ready-made
    # lines of what changed (portal/store/derived.py says who computes them).
    derived.imported(conn, derived.Imported(ledger, changed_ids, closed_ids, renamed, old_as_of, ledger.as_of))
    return ImportSummary(snapshot_id, len(ledger.customers), len(ledger.invoices), new, changed, closed)


def _import_customers(conn: Connection, ledger: Ledger, now: datetime) -> set[str]:
    """Returns the ids of the customers whose name, group or collector changed."""
    existing = {r.customer_id: r for r in conn.execute(select(
        customers.c.customer_id, customers.c.name, customers.c.currency, customers.c.locale,
        customers.c.group_name, customers.c.collector, customers.c.active))}
    new_rows, changed_rows = [], []
    for c in ledger.customers.values():
        old = existing.get(c.customer_id)
        if old is None:
            new_rows.append((c.customer_id, c.name, c.currency, c.locale, c.group, c.collector, True, now, now))
        elif (old.name, old.currency, old.locale, old.group_name, old.collector, old.active) != (
                c.name, c.currency, c.locale, c.group, c.collector, True):
            changed_rows.append({"name": c.name, "currency": c.currency, "locale": c.locale,
                                 "group_name": c.group, "collector": c.collector, "active": True,
                                 "last_seen_at": now, "b_id": c.customer_id})
    bulk_insert(conn, customers, ("customer_id", "name", "currency", "locale", "group_name", "collector",
                                  "active", "first_seen_at", "last_seen_at"), new_rows)
    if changed_rows:
        conn.execute(update_by(customers, "customer_id", changed_rows[0]), changed_rows)
    gone = [cid for cid, r in existing.items() if r.active and cid not in ledger.customers]
    for chunk in chunks(gone, 500):
        conn.execute(update(customers).where(customers.c.customer_id.in_(chunk)).values(active=False))
    return {row["b_id"] for row in changed_rows
            if (existing[row["b_id"]].name, existing[row["b_id"]].group_name, existing[row["b_id"]].collector)
            != (row["name"], row["group_name"], row["collector"])}


def _import_invoices(conn: Connection, ledger: Ledger, now: datetime, hashes: dict[str, str]
                     ) -> tuple[int, int, int, set[str], set[str]]:
    existing = dict(conn.execute(select(invoices.c.invoice_id, invoices.c.content_hash)).all())
    open_ids = set(conn.execute(select(invoices.c.invoice_id).where(invoices.c.is_open)).scalars())
    new_rows, changed_rows = [], []
    for inv in ledger.invoices.values():
        digest = hashes[inv.invoice_id]
        old = existing.get(inv.invoice_id)
        if old is None:
            new_rows.append((inv.invoice_id, inv.customer_id, inv.number, inv.issue_date, inv.due_date,
                             inv.amount, inv.balance, inv.currency, inv.po_number, inv.terms, inv.description,
                             digest, True, now, now, None))
        elif old != digest or inv.invoice_id not in open_ids:
            changed_rows.append({
                "customer_id": inv.customer_id, "number": inv.number, "issue_date": inv.issue_date,
                "due_date": inv.due_date, "amount": inv.amount, "balance": inv.balance,
                "currency": inv.currency, "po_number": inv.po_number, "terms": inv.terms,
                "description": inv.description, "content_hash": digest, "is_open": True,
                "changed_at": now, "closed_at": None, "b_id": inv.invoice_id})
    new_rows.sort()  # in key order: the indexes grow at one end instead of everywhere
    bulk_insert(conn, invoices, ("invoice_id", "customer_id", "number", "issue_date", "due_date", "amount",
                                 "balance", "currency", "po_number", "terms", "description", "content_hash",
                                 "is_open", "first_seen_at", "changed_at", "closed_at"), new_rows)
    if changed_rows:
        conn.execute(update_by(invoices, "invoice_id", changed_rows[0]), changed_rows)
    gone = sorted(open_ids - ledger.invoices.keys())
    for chunk in chunks(gone, 500):
        conn.execute(update(invoices).where(invoices.c.invoice_id.in_(chunk))
                     .values(is_open=False, closed_at=ledger.as_of))
    changed_ids = {r[0] for r in new_rows} | {r["b_id"] for r in changed_rows}
    return len(new_rows), len(changed_rows), len(gone), changed_ids, set(gone)
