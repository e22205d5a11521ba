"""The store's schema: the metadata every table is defined on, its column types, and the core tables.

The core tables hold the export as imported (customers, contacts, invoices, their lines, credits, documents,
one row per snapshot) and what happened to a customer's documents (`events`). The import refreshes the
export-derived tables (portal/store/importer.py); what the webhook records lives in tables an import never
touches, and refers to customers and invoices by id, so history survives an invoice leaving the export. Invoices
that leave the export are kept, marked closed, so receipts stay reportable. Every other table of the store is
defined in a module of this package on the same `metadata` (portal/store/registry.py lists them all); the schema
is created and upgraded by Alembic (portal/store/migrations), never by `create_all`.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
)


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

# The invoices a person has viewed (a `page_viewed` event naming the invoice), the first time. Kept by a database
# trigger on `events` (migration 0013_worklist_facts), so that every writer keeps it without knowing: the webhook's
# raw hot path (portal/store/eventlog.py), the store, bulk loads. The worklist's "not viewed by a person" asks it:
# against 1,000,000 events the same question was 71,000 index probes, a third of a second (bench/workbench.py).
# Keyed by the invoice alone: an event names an invoice only when it is the event's customer's (eventlog.py).
invoice_views = Table(
    "invoice_views", metadata,
    Column("invoice_id", String(ID), primary_key=True),
    Column("first_viewed_at", UTCDateTime, nullable=False),
)

