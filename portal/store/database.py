"""The store: one database (SQLite by default, PostgreSQL by URL) and the core queries on it.

`Store` owns the engine and its transactions (`begin`, which turns any database error into `StoreUnavailable`, a
message the command line and the webhook show), brings the schema up to date (`migrate`, Alembic), imports a
ledger (`import_snapshot`, portal/store/importer.py) and answers what the build and the webhook ask of the core
tables (portal/store/tables.py): each customer's data for its pages, the digests that say whom to re-render,
customer keys and their revocation, events, and the checks before anything is recorded. Tables of other features
live in their own modules of this package, with their queries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from portal.core.errors import NotFound, PortalError
from portal.export.model import Contact, Credit, Customer, Document, Invoice, InvoiceLine, Ledger
from portal.store import contactchanges, derived, importer
from portal.store.engine import make_engine
from portal.store.importer import ImportSummary
from portal.store.tables import (
    contacts,
    credits,
    customer_keys,
    customers,
    documents,
    events,
    invoice_lines,
    invoices,
    snapshots,
)


def state_digest(customer: tuple, invoice_hashes: list[str], other_rows: list[tuple]) -> str:
    """A customer's CustomerState digest: its row, its open invoices' content hashes (by invoice id), then its
    contact, credit and document rows (each table's columns in order, by contact / credit / document id)."""
    return hashlib.sha256(repr([customer, *invoice_hashes, *other_rows]).encode()).hexdigest()


@dataclass(frozen=True)
class CustomerState:
    """Enough to decide whether a customer's pages need rendering, without loading them."""

    digest: str  # SHA-256 of every row the customer's pages are made from
    key_version: int
    invoice_ids: list[str]


@dataclass
class CustomerData:
    """Everything the pages of one customer show, read back from the store."""

    customer: Customer
    key_version: int
    as_of: datetime
    contacts: list[Contact]
    invoices: list[Invoice]  # open invoices, by due date
    lines: dict[str, list[InvoiceLine]]
    credits: list[Credit]  # credits with a balance
    documents: list[Document]


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database error ({self.engine.dialect.name}): "
                                   f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision, then let the derived tables complete what
        they lack: an invoice without its stored position, a payment without its movements, an invoice without
        its receipt line (a database upgraded from before them, or loaded in bulk; portal/store/derived.py). A
        few counts when all is well."""
        from portal.store.migrations import upgrade  # Alembic: loaded only by what migrates

        with self.begin() as conn:
            upgrade(conn)
        derived.migrated(self)

    # --- snapshots -------------------------------------------------------------------------------

    def import_snapshot(self, ledger: Ledger, source: str = "", hashes: dict[str, str] | None = None
                        ) -> ImportSummary:
        """Make the store reflect `ledger` in one transaction, keeping events, keys and closed invoices, the
        derived tables following (portal/store/importer.py). `hashes`: the ledger's invoice_hashes when the
        caller already computed them."""
        with self.begin() as conn:
            return importer.import_ledger(conn, ledger, source, hashes)

    # --- reading for the build ---------------------------------------------------------------------

    def latest_snapshot_id(self, conn: Connection | None = None) -> int | None:
        with self._conn(conn) as c:
            return c.execute(select(func.max(snapshots.c.snapshot_id))).scalar()

    def latest_as_of(self, conn: Connection | None = None) -> datetime | None:
        with self._conn(conn) as c:
            return c.execute(select(snapshots.c.as_of).order_by(snapshots.c.snapshot_id.desc()).limit(1)
                             ).scalar()

    def customer_data(self, customer_ids: Iterable[str] | None = None) -> list[CustomerData]:
        """The pages' data for active customers (all, or those named), from the newest snapshot."""
        wanted = None if customer_ids is None else set(customer_ids)
        with self.begin() as conn:
            as_of = self.latest_as_of(conn)
            if as_of is None:
                raise NotFound("nothing imported yet: run `portal build EXPORT_DIR` first")

            def only(table: Table, query: Any) -> Any:
                if wanted is not None:
                    query = query.where(table.c.customer_id.in_(sorted(wanted)))
                return query

            versions = self.key_versions(conn)
            result: dict[str, CustomerData] = {}
            for r in conn.execute(only(customers, select(customers).where(customers.c.active))
                                  .order_by(customers.c.customer_id)):
                result[r.customer_id] = CustomerData(
                    Customer(r.customer_id, r.name, r.currency, r.locale, r.group_name, r.collector),
                    versions.get(r.customer_id, 1), as_of, [], [], {}, [], [])
            for r in conn.execute(only(contacts, select(contacts)).order_by(contacts.c.customer_id,
                                                                            contacts.c.contact_id)):
                if r.customer_id in result:
                    result[r.customer_id].contacts.append(Contact(r.customer_id, r.contact_id, r.email,
                                                                  r.name, r.role))
            # Confirmed AP address changes sit on top of the export's contacts (portal/store/contactchanges.py).
            confirmed = contactchanges.by_customer(conn, wanted)
            for cid, found in confirmed.items():
                if cid in result:
                    result[cid].contacts[:] = contactchanges.overlay(result[cid].contacts, found)
            open_invoices = only(invoices, select(invoices).where(invoices.c.is_open))
            for r in conn.execute(open_invoices.order_by(invoices.c.due_date, invoices.c.invoice_id)):
                if r.customer_id in result:
                    result[r.customer_id].invoices.append(Invoice(
                        r.invoice_id, r.customer_id, r.number, r.issue_date, r.due_date, r.amount, r.balance,
                        r.currency, r.po_number, r.terms, r.description))
            line_query = select(invoice_lines, invoices.c.customer_id).join(
                invoices, invoices.c.invoice_id == invoice_lines.c.invoice_id).where(invoices.c.is_open)
            if wanted is not None:
                line_query = line_query.where(invoices.c.customer_id.in_(sorted(wanted)))
            for r in conn.execute(line_query.order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no)):
                if r.customer_id in result:
                    result[r.customer_id].lines.setdefault(r.invoice_id, []).append(InvoiceLine(
                        r.invoice_id, r.line_no, r.description, _to_dec(r.quantity), _to_dec(r.unit_price),
                        r.amount))
            for r in conn.execute(only(credits, select(credits).where(credits.c.balance > 0))
                                  .order_by(credits.c.issue_date, credits.c.credit_id)):
                if r.customer_id in result:
                    result[r.customer_id].credits.append(Credit(
                        r.credit_id, r.customer_id, r.number, r.issue_date, r.amount, r.balance, r.currency,
                        r.description))
            for r in conn.execute(only(documents, select(documents)).order_by(documents.c.document_id)):
                if r.customer_id in result:
                    result[r.customer_id].documents.append(Document(
                        r.document_id, r.customer_id, r.file, r.invoice_id, r.kind, r.title, r.sha256, r.size,
                        r.content_type))
        # The database's collation may order ids unlike Python: sort here, as portal.store.snapshotview does.
        for data in result.values():
            data.contacts.sort(key=lambda x: x.contact_id)
            data.invoices.sort(key=lambda x: (x.due_date, x.invoice_id))
            data.credits.sort(key=lambda x: (x.issue_date, x.credit_id))
            data.documents.sort(key=lambda x: x.document_id)
        return list(result.values())

    def customer_states(self) -> dict[str, CustomerState]:
        """Per active customer: a digest of its rows (invoice content hashes stand in for invoices and
        lines), its key version and its open invoice ids. One pass per table, no per-customer query.
        Sorted in Python, not by the database, whose collation may order ids differently: the digests must
        be the ones portal.store.snapshotview computes from an export in memory."""
        customer_rows: dict[str, tuple] = {}
        invoice_rows: dict[str, list[tuple[str, str]]] = {}
        other_rows: dict[str, list[tuple]] = {}
        with self.begin() as conn:
            for r in conn.execute(select(customers).where(customers.c.active)):
                customer_rows[r.customer_id] = (r.name, r.currency, r.locale, r.group_name, r.collector)
                invoice_rows[r.customer_id], other_rows[r.customer_id] = [], []
            for r in conn.execute(select(invoices.c.customer_id, invoices.c.invoice_id, invoices.c.content_hash)
                                  .where(invoices.c.is_open)):
                if r.customer_id in customer_rows:
                    invoice_rows[r.customer_id].append((r.invoice_id, r.content_hash))
            for table, key in ((contacts, 1), (credits, 0), (documents, 0)):
                rows: dict[str, list[tuple]] = {}
                for r in conn.execute(select(table)):
                    if r.customer_id in customer_rows:
                        rows.setdefault(r.customer_id, []).append(tuple(r))
                for cid, found in rows.items():
                    other_rows[cid].extend(sorted(found, key=lambda row, k=key: row[k]))
            versions = self.key_versions(conn)
        result = {}
        for cid in sorted(customer_rows):
            pairs = sorted(invoice_rows[cid])
            result[cid] = CustomerState(state_digest(customer_rows[cid], [h for _, h in pairs], other_rows[cid]),
                                        versions.get(cid, 1), [i for i, _ in pairs])
        return result

    # --- keys --------------------------------------------------------------------------------------

    def key_versions(self, conn: Connection | None = None) -> dict[str, int]:
        with self._conn(conn) as c:
            return dict(c.execute(select(customer_keys.c.customer_id, customer_keys.c.key_version)).all())

    def key_version(self, customer_id: str, conn: Connection | None = None) -> int:
        with self._conn(conn) as c:
            version = c.execute(select(customer_keys.c.key_version)
                                .where(customer_keys.c.customer_id == customer_id)).scalar()
        return version or 1

    def revoke(self, customer_id: str) -> int:
        """Bump the customer's key version: its pages move at the next build and old tokens stop working."""
        now = datetime.now(UTC)
        with self.begin() as conn:
            known = conn.execute(select(customers.c.customer_id)
                                 .where(customers.c.customer_id == customer_id)).scalar()
            if known is None:
                raise NotFound(f'customer "{customer_id}" is not in the store (build an export first)')
            current = conn.execute(select(customer_keys.c.key_version)
                                   .where(customer_keys.c.customer_id == customer_id)).scalar()
            if current is None:
                conn.execute(insert(customer_keys).values(customer_id=customer_id, key_version=2,
                                                          revoked_at=now))
                return 2
            conn.execute(update(customer_keys).where(customer_keys.c.customer_id == customer_id)
                         .values(key_version=current + 1, revoked_at=now))
            return current + 1

    # --- events ------------------------------------------------------------------------------------

    def record_event(self, kind: str, customer_id: str, conn: Connection | None = None,
                     occurred_at: datetime | None = None, **fields: str) -> None:
        row = {"kind": kind, "customer_id": customer_id, "occurred_at": occurred_at or datetime.now(UTC),
               **fields}
        with self._conn(conn) as c:
            c.execute(insert(events).values(**row))

    def count_events(self, **where: str) -> int:
        query = select(func.count()).select_from(events)
        for column, value in where.items():
            query = query.where(events.c[column] == value)
        with self.begin() as conn:
            return conn.execute(query).scalar_one()

    def count_events_since(self, kind: str, since: datetime, conn: Connection | None = None,
                           detail_prefix: str = "", **where: str) -> int:
        """Events of `kind` at or after `since` (e.g. how many fresh links one contact got today)."""
        query = select(func.count()).select_from(events).where(events.c.kind == kind, events.c.occurred_at >= since)
        if detail_prefix:
            query = query.where(events.c.detail.startswith(detail_prefix, autoescape=True))
        for column, value in where.items():
            query = query.where(events.c[column] == value)
        with self._conn(conn) as c:
            return c.execute(query).scalar_one()

    # --- what the webhook checks before recording anything -----------------------------------------

    def active_key_version(self, customer_id: str, conn: Connection | None = None) -> int | None:
        """The key version of an active customer, or None when the customer is unknown or gone from the
        export (its pages no longer exist, so its links must behave like any unknown link)."""
        query = (select(customers.c.active, customer_keys.c.key_version)
                 .select_from(customers.outerjoin(customer_keys,
                                                  customer_keys.c.customer_id == customers.c.customer_id))
                 .where(customers.c.customer_id == customer_id))
        with self._conn(conn) as c:
            row = c.execute(query).first()
        if row is None or not row.active:
            return None
        return row.key_version or 1

    def document_name(self, customer_id: str, document_id: str, conn: Connection | None = None) -> str | None:
        """The file name (as exported) of a supplied document of this customer; None when it is not theirs."""
        with self._conn(conn) as c:
            file = c.execute(select(documents.c.file).where(documents.c.document_id == document_id,
                                                           documents.c.customer_id == customer_id)).scalar()
        return None if file is None else Path(file).name

    def customer_contacts(self, customer_id: str, conn: Connection | None = None) -> tuple[str, list[Contact]]:
        """The customer's name and its contacts on file (the only addresses a fresh link may go to): the export's,
        with the AP address changes the customer confirmed (portal/store/contactchanges.py)."""
        with self._conn(conn) as c:
            name = c.execute(select(customers.c.name).where(customers.c.customer_id == customer_id)).scalar()
            rows = c.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                             .order_by(contacts.c.contact_id)).all()
            confirmed = contactchanges.changes(c, [customer_id], [contactchanges.CONFIRMED])
        exported = [Contact(r.customer_id, r.contact_id, r.email, r.name, r.role) for r in rows]
        return name or "", contactchanges.overlay(exported, confirmed)

    def customer_locale(self, customer_id: str, conn: Connection | None = None) -> str:
        """The customer's `locale` (customers.csv): the language and formats of what it is sent and shown; "" when
        the customer is unknown (the default language then)."""
        with self._conn(conn) as c:
            return c.execute(select(customers.c.locale).where(customers.c.customer_id == customer_id)).scalar() or ""

    # The webhook's hot path: every emailed link, beacon and download runs these, so each is one prepared
    # statement (built once, compiled once) rather than a query assembled per request.

    def access(self, customer_id: str, invoice_id: str = "", conn: Connection | None = None
               ) -> tuple[int | None, InvoiceState | None]:
        """In one query: the customer's key version (None when unknown or inactive, as `active_key_version`)
        and the invoice's number and open state when the invoice is this customer's (None otherwise, also
        when it belongs to someone else: a token never reaches another customer's invoice)."""
        with self._conn(conn) as c:
            row = c.execute(_ACCESS, {"customer_id": customer_id, "invoice_id": invoice_id}).first()
        if row is None or not row.active:
            return None, None
        invoice = None if row.number is None else InvoiceState(invoice_id, row.number, bool(row.is_open))
        return row.key_version or 1, invoice

    def add_event(self, conn: Connection, kind: str, customer_id: str, **fields: str) -> None:
        """`record_event` inside a transaction the caller holds, through one prepared INSERT."""
        conn.execute(_INSERT_EVENT, {"kind": kind, "customer_id": customer_id, "occurred_at": datetime.now(UTC),
                                     "contact_id": "", "invoice_id": "", "document_id": "", "ip": "",
                                     "user_agent": "", "detail": "", **fields})

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.begin() as c:
                yield c


@dataclass(frozen=True)
class InvoiceState:
    """What the webhook needs to know about one invoice of a verified customer."""

    invoice_id: str
    number: str
    is_open: bool


_ACCESS = (
    select(customers.c.active, customer_keys.c.key_version, invoices.c.number, invoices.c.is_open)
    .select_from(customers
                 .outerjoin(customer_keys, customer_keys.c.customer_id == customers.c.customer_id)
                 .outerjoin(invoices, and_(invoices.c.invoice_id == bindparam("invoice_id"),
                                           invoices.c.customer_id == customers.c.customer_id)))
    .where(customers.c.customer_id == bindparam("customer_id"))
)
_INSERT_EVENT = insert(events)


class StoreUnavailable(PortalError):
    """The database could not be reached or refused the statement."""


def _to_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


