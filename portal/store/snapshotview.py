"""What the store will hold once a ledger is imported, computed from the ledger in memory.

A build that has just read an export renders from this view while the import runs (portal.build.pipeline): the
pages do not wait for the import, and the render workers do not read back from the database the rows the
build has in memory anyway. The view must agree exactly with the store after `import_snapshot(ledger)`:
`states()` with `Store.customer_states()` (the digests decide what the next build re-renders) and
`customer_data()` with `Store.customer_data()` (the pages); tests/store/test_snapshotview.py checks both on SQLite
and PostgreSQL. Keys, payments and disputes are not in the export: the caller passes the key versions and
the render workers read payments and disputes from the store as always (an import does not touch them).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import datetime

from portal.export.model import Contact, Credit, Document, Invoice, Ledger
from portal.store.database import CustomerData, CustomerState, state_digest
from portal.store.importer import invoice_hash


class SnapshotView:
    def __init__(self, ledger: Ledger, hashes: dict[str, str], key_versions: dict[str, int]):
        """`hashes`: invoice id -> invoice_hash, for some or all of the ledger's invoices."""
        self.ledger = ledger
        self.hashes = hashes
        self.key_versions = key_versions
        self.as_of: datetime = ledger.as_of
        # Grouped once, in the parent: forked render workers share these pages of memory.
        self.contacts: dict[str, list[Contact]] = {}
        for contact in ledger.contacts:
            self.contacts.setdefault(contact.customer_id, []).append(contact)
        self.invoices: dict[str, list[Invoice]] = {}
        for invoice in ledger.invoices.values():
            self.invoices.setdefault(invoice.customer_id, []).append(invoice)
        self.credits: dict[str, list[Credit]] = {}
        for credit in ledger.credits.values():
            self.credits.setdefault(credit.customer_id, []).append(credit)
        self.documents: dict[str, list[Document]] = {}
        for document in ledger.documents.values():
            self.documents.setdefault(document.customer_id, []).append(document)

    def states(self, digest_of: Container[str] | None = None) -> dict[str, CustomerState]:
        """As `Store.customer_states()` will return after the import. `digest_of`: compute the digests of
        these customers only, leaving the others' "" (a build renders a customer its folder has never seen
        whatever its digest, so the render worker computes that digest, with `digest`, in parallel)."""
        result = {}
        for cid in sorted(self.ledger.customers):
            invoice_ids = sorted(i.invoice_id for i in self.invoices.get(cid, ()))
            digest = self.digest(cid) if digest_of is None or cid in digest_of else ""
            result[cid] = CustomerState(digest, self.key_versions.get(cid, 1), invoice_ids)
        return result

    def digest(self, cid: str) -> str:
        """The CustomerState digest of one customer of the export (Store.customer_states' after the import)."""
        c = self.ledger.customers[cid]
        contacts = sorted(((x.customer_id, x.contact_id, x.email, x.name, x.role)
                           for x in self.contacts.get(cid, ())), key=lambda row: row[1])
        credits = sorted(((x.credit_id, x.customer_id, x.number, x.issue_date, x.amount, x.balance, x.currency,
                           x.description) for x in self.credits.get(cid, ())), key=lambda row: row[0])
        documents = sorted(((x.document_id, x.customer_id, x.invoice_id, x.kind, x.title, x.file, x.sha256,
                             x.size, x.content_type) for x in self.documents.get(cid, ())), key=lambda row: row[0])
        invoices = sorted(self.invoices.get(cid, ()), key=lambda i: i.invoice_id)
        return state_digest((c.name, c.currency, c.locale, c.group, c.collector),
                            [self.invoice_hash(i) for i in invoices], [*contacts, *credits, *documents])

    def invoice_hash(self, invoice: Invoice) -> str:
        """From `hashes` when there, else computed (and kept)."""
        digest = self.hashes.get(invoice.invoice_id)
        if digest is None:
            lines = self.ledger.lines.get(invoice.invoice_id, ())
            digest = self.hashes[invoice.invoice_id] = invoice_hash(invoice, lines)
        return digest

    def customer_data(self, customer_ids: Iterable[str]) -> list[CustomerData]:
        """As `Store.customer_data(customer_ids)` will return after the import (customers not in the export
        are left out, as inactive ones are there)."""
        lines = self.ledger.lines
        result = []
        for cid in customer_ids:
            customer = self.ledger.customers.get(cid)
            if customer is None:
                continue
            invoices = sorted(self.invoices.get(cid, ()), key=lambda i: (i.due_date, i.invoice_id))
            result.append(CustomerData(
                customer, self.key_versions.get(cid, 1), self.as_of,
                sorted(self.contacts.get(cid, ()), key=lambda x: x.contact_id),
                invoices,
                {i.invoice_id: list(lines[i.invoice_id]) for i in invoices if lines.get(i.invoice_id)},
                sorted((x for x in self.credits.get(cid, ()) if x.balance > 0),
                       key=lambda x: (x.issue_date, x.credit_id)),
                sorted(self.documents.get(cid, ()), key=lambda x: x.document_id)))
        return result
