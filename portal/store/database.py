"""The store: SQLAlchemy tables and the queries the generator needs. SQLite by default, PostgreSQL by URL.

The export-derived tables (customers, contacts, invoices, lines, credits, documents) are refreshed by
`import_snapshot`; what the webhook records (events, and later payments and disputes) lives in tables an
import never touches, and refers to customers and invoices by id so history survives an invoice leaving
the export. Invoices that leave the export are kept, marked closed, so receipts stay reportable.
The schema is created and upgraded by Alembic (`portal/store/migrations`), never by `create_all`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from portal.core.errors import NotFound, PortalError
from portal.export.reader import Contact, Credit, Customer, Document, Invoice, InvoiceLine, Ledger


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python; naive UTC in the database (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: times are stored in UTC and must say so")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})

ID = 200  # ERP ids are short, but leave room

customers = Table(
    "customers", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("name", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("locale", String(20), nullable=False),
    Column("group_name", String(ID), nullable=False, default=""),
    Column("collector", String(320), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
)

# Separate from `customers` so that an import never resets a revocation.
customer_keys = Table(
    "customer_keys", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("key_version", Integer, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=False),
)

contacts = Table(
    "contacts", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("contact_id", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("role", String(20), nullable=False, default="billing"),
)

invoices = Table(
    "invoices", metadata,
    Column("invoice_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("number", String(ID), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("po_number", String(ID), nullable=False, default=""),
    Column("terms", Text, nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    # SHA-256 of everything the export says about the invoice (lines included): tells what changed.
    Column("content_hash", String(64), nullable=False),
    Column("is_open", Boolean, nullable=False, default=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
)

invoice_lines = Table(
    "invoice_lines", metadata,
    Column("invoice_id", String(ID), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("description", Text, nullable=False, default=""),
    # Exact decimal text: SQLite's NUMERIC would round through a float.
    Column("quantity", String(40), nullable=True),
    Column("unit_price", String(40), nullable=True),
    Column("amount", BigInteger, nullable=False),
)

credits = Table(
    "credits", metadata,
    Column("credit_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("number", String(ID), nullable=False),
    Column("issue_date", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text, nullable=False, default=""),
)

documents = Table(
    "documents", metadata,
    Column("document_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("invoice_id", String(ID), nullable=False, default=""),
    Column("kind", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("file", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(100), nullable=False),
)

snapshots = Table(
    "snapshots", metadata,
    Column("snapshot_id", Integer, primary_key=True, autoincrement=True),
    Column("as_of", UTCDateTime, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
    Column("source", Text, nullable=False),
    Column("customers", Integer, nullable=False),
    Column("invoices", Integer, nullable=False),
    Column("invoices_new", Integer, nullable=False),
    Column("invoices_changed", Integer, nullable=False),
    Column("invoices_closed", Integer, nullable=False),
)

# Everything that happened to a customer's documents: email_sent, link_opened, page_viewed, ...
events = Table(
    "events", metadata,
    Column("event_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("customer_id", String(ID), nullable=False),
    Column("contact_id", String(320), nullable=False, default=""),
    Column("invoice_id", String(ID), nullable=False, default=""),
    Column("document_id", String(ID), nullable=False, default=""),
    Column("ip", String(64), nullable=False, default=""),
    Column("user_agent", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_events_customer_invoice_kind", "customer_id", "invoice_id", "kind"),
    Index("ix_events_kind_occurred_at", "kind", "occurred_at"),
)


WAL_CHECKPOINT_PAGES = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the webhook write while a build reads; busy_timeout waits instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Checkpoint the WAL every 10,000 pages (40 MB) instead of SQLite's 1,000. Under a stream of receipts each
    # checkpoint costs two fsyncs and copies the same few hot pages (the events table's last leaf, its index
    # leaves) into the database again; ten times fewer of them took 10-20% off a receipt's cost, and with
    # two gunicorn workers writing, more off its wall time, which the other worker spends waiting for the lock
    # (measured in-process: 75 -> 57 us CPU, 157 -> 114 us wall per committed receipt).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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


def state_digest(customer: tuple, invoice_hashes: list[str], other_rows: list[tuple]) -> str:
    """A customer's CustomerState digest: its row, its open invoices' content hashes (by invoice id), then its
    contact, credit and document rows (each table's columns in order, by contact / credit / document id)."""
    return hashlib.sha256(repr([customer, *invoice_hashes, *other_rows]).encode()).hexdigest()


@dataclass(frozen=True)
class ImportSummary:
    snapshot_id: int
    customers: int
    invoices: int
    new: int
    changed: int
    closed: int


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
        """Create or upgrade the schema to the newest Alembic revision."""
        from portal.store.migrations import upgrade

        with self.begin() as conn:
            upgrade(conn)
        # An invoice without its stored position, a payment without its movements (a database upgraded from
        # before them, or loaded in bulk): write them now, then the receipt lines, which read the positions
        # (PostgreSQL; a few counts when all is well).
        from portal.balances.position import ensure_complete as positions_complete
        from portal.staff.receiptlines import ensure_complete

        ensure_complete(self, force=positions_complete(self))

    # --- snapshots -------------------------------------------------------------------------------

    def import_snapshot(self, ledger: Ledger, source: str = "", hashes: dict[str, str] | None = None
                        ) -> ImportSummary:
        """Make the store reflect `ledger` in one transaction, keeping events, keys and closed invoices.
        `hashes`: the ledger's invoice_hashes when the caller already computed them."""
        now = datetime.now(UTC)
        if hashes is None:
            hashes = invoice_hashes(ledger)
        with self.begin() as conn:
            if conn.dialect.name == "sqlite":
                # The default 2 MB page cache thrashes while 100k invoices go into their indexes.
                conn.exec_driver_sql("PRAGMA cache_size=-65536")
            old_as_of = self.latest_as_of(conn)
            renamed = self._import_customers(conn, ledger, now)
            new, changed, closed, changed_ids, closed_ids = self._import_invoices(conn, ledger, now, hashes)
            conn.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(
                select(invoices.c.invoice_id).where(invoices.c.is_open.is_(False)))))
            for chunk in _chunks(sorted(changed_ids), 500):
                conn.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(chunk)))
            bulk_insert(conn, invoice_lines, ("invoice_id", "line_no", "description", "quantity", "unit_price",
                                               "amount"),
                         [(ln.invoice_id, ln.line_no, ln.description, _dec(ln.quantity), _dec(ln.unit_price),
                           ln.amount) for invoice_id in sorted(changed_ids) for ln in ledger.lines.get(invoice_id, ())])
            # Contacts, credits and documents are small and carry no history: replaced whole.
            conn.execute(delete(contacts))
            bulk_insert(conn, contacts, ("customer_id", "contact_id", "email", "name", "role"),
                         [(c.customer_id, c.contact_id, c.email, c.name, c.role) for c in ledger.contacts])
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
            # What each invoice owes now (portal/balances/position.py) follows the new balances and the new as_of,
            # then the
            # staff export's ready-made lines of what changed (PostgreSQL; see portal/staff/receiptlines.py).
            from portal.balances.position import after_import
            from portal.staff.receiptlines import sync

            refreshed = after_import(conn, ledger, changed_ids, closed_ids, old_as_of, ledger.as_of)
            sync(conn, refreshed, renamed)
        return ImportSummary(snapshot_id, len(ledger.customers), len(ledger.invoices), new, changed, closed)

    def _import_customers(self, conn: Connection, ledger: Ledger, now: datetime) -> set[str]:
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
            conn.execute(_update_by(customers, "customer_id", changed_rows[0]), changed_rows)
        gone = [cid for cid, r in existing.items() if r.active and cid not in ledger.customers]
        for chunk in _chunks(gone, 500):
            conn.execute(update(customers).where(customers.c.customer_id.in_(chunk)).values(active=False))
        return {row["b_id"] for row in changed_rows
                if (existing[row["b_id"]].name, existing[row["b_id"]].group_name, existing[row["b_id"]].collector)
                != (row["name"], row["group_name"], row["collector"])}

    def _import_invoices(self, conn: Connection, ledger: Ledger, now: datetime, hashes: dict[str, str]
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
            conn.execute(_update_by(invoices, "invoice_id", changed_rows[0]), changed_rows)
        gone = sorted(open_ids - ledger.invoices.keys())
        for chunk in _chunks(gone, 500):
            conn.execute(update(invoices).where(invoices.c.invoice_id.in_(chunk))
                         .values(is_open=False, closed_at=ledger.as_of))
        changed_ids = {r[0] for r in new_rows} | {r["b_id"] for r in changed_rows}
        return len(new_rows), len(changed_rows), len(gone), changed_ids, set(gone)

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
        """The customer's name and its contacts on file (the only addresses a fresh link may go to)."""
        with self._conn(conn) as c:
            name = c.execute(select(customers.c.name).where(customers.c.customer_id == customer_id)).scalar()
            rows = c.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                             .order_by(contacts.c.contact_id)).all()
        return name or "", [Contact(r.customer_id, r.contact_id, r.email, r.name, r.role) for r in rows]

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


def bulk_insert(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT many rows as one driver-level executemany. `insert(table)` with a list of dicts spent more time in
    SQLAlchemy's per-row parameter handling than SQLite spent writing (100k invoices: 4 s of 6). The values
    still pass through each column type's own bind processor (SQLite's date text, naive UTC datetimes), so
    the stored rows are the ones `insert(table)` would store; errors are wrapped as usual."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.paramstyle == "qmark":
        mark = "?"
    elif dialect.paramstyle in ("format", "pyformat"):
        mark = "%s"
    else:  # a driver this code does not know: let SQLAlchemy do it
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    active = [(index, _memoised(process)) for index, name in enumerate(columns)
              if (process := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
    if active:
        converted = []
        for row in rows:
            values = list(row)
            for index, process in active:
                values[index] = process(values[index])
            converted.append(tuple(values))
        rows = converted
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join(mark for _ in columns)})")
    conn.exec_driver_sql(sql, rows)


def _memoised(process: Any) -> Any:
    """Bind processors convert dates and times, which repeat (the import time is on every row): once each."""
    cache: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        try:
            return cache[value]
        except KeyError:
            cache[value] = result = process(value)
            return result
    return run


def _update_by(table: Table, key: str, sample: dict[str, Any]) -> Any:
    """An executemany UPDATE keyed on `b_id` (a bind name that cannot clash with a column)."""
    values = {k: bindparam(k) for k in sample if k != "b_id"}
    return update(table).where(table.c[key] == bindparam("b_id")).values(**values)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _to_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

