"""The tables the staff dashboard keeps for receipts, and the lock their writers share.

- `receipt_rollup`: per (customer_id, invoice_id), the event counts and times the receipts view shows, kept by
  portal/staff/receiptrollup.py; `receipt_rollup_state`: its watermark and gap list, in one row (id 1) whose
  lock (`lock`, or the refresh's UPDATE) puts refreshes and the receipt lines' writers one after the other.
- `receipt_lines`: every invoice's row of the receipts CSV export, ready-made on PostgreSQL, kept by
  portal/staff/receiptlines.py.
- `STAFF_INDEXES`: indexes the staff views need on tables other modules own (defined on the existing `Table`
  objects; created by migration 0003_staff_data).

They are here, below both of the modules that write them, because each writer reads the other's table: a rollup
refresh rewrites the tails of the lines it changed, and a line's tail is made from the rollup.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    select,
)
from sqlalchemy.engine import Connection

from portal.store import disputes as disputestore
from portal.store import payments as paystore
from portal.store.database import ID, UTCDateTime, events, invoices, metadata

receipt_rollup = Table(
    "receipt_rollup", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("invoice_id", String(ID), primary_key=True),  # "" for account and statement pages
    Column("emails_sent", Integer, nullable=False, default=0),
    Column("link_opened", Integer, nullable=False, default=0),  # fetches of an emailed link (may be a scanner)
    Column("page_viewed", Integer, nullable=False, default=0),  # a person's browser displayed the page
    Column("documents_viewed", Integer, nullable=False, default=0),
    Column("first_sent_at", UTCDateTime, nullable=True),
    Column("first_opened_at", UTCDateTime, nullable=True),
    Column("first_viewed_at", UTCDateTime, nullable=True),
    Column("last_viewed_at", UTCDateTime, nullable=True),
    Column("last_event_at", UTCDateTime, nullable=False),  # the newest event of any kind for the key
)

receipt_rollup_state = Table(
    "receipt_rollup_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: the row refreshes lock
    Column("last_event_id", BigInteger, nullable=False, default=0),
    # JSON list of [lo, hi, first_seen_iso]: event id ranges missing below the watermark at some refresh.
    Column("gaps", Text, nullable=False, default="[]"),
    Column("refreshed_at", UTCDateTime, nullable=True),
)

# Indexes on tables owned elsewhere, for the staff views (see migration 0003_staff_data).
STAFF_INDEXES = [
    # The customer timeline: one customer's events, newest first, with a unique tiebreaker.
    Index("ix_events_customer_id_occurred_at_event_id", events.c.customer_id, events.c.occurred_at,
          events.c.event_id),
    # The receipts view's default order (due date, then id), and the open-invoice aggregates of the KPIs.
    Index("ix_invoices_due_date_invoice_id", invoices.c.due_date, invoices.c.invoice_id),
    Index("ix_invoices_is_open_currency", invoices.c.is_open, invoices.c.currency),
    # Invoices settled in the last 90 days (e-payment adoption), sales in the last 90 days (DSO).
    Index("ix_invoices_closed_at", invoices.c.closed_at),
    Index("ix_invoices_issue_date", invoices.c.issue_date),
    # The payments table's default order, and its status filter.
    Index("ix_payment_attempts_created_at", paystore.payment_attempts.c.created_at),
    Index("ix_payment_attempts_status", paystore.payment_attempts.c.status),
    # The disputes queue (by state, oldest first) and its attachment counts.
    Index("ix_disputes_status_created_at", disputestore.disputes.c.status, disputestore.disputes.c.created_at),
]

STATE_ID = 1  # the state row's id

receipt_lines = Table(
    "receipt_lines", metadata,
    Column("invoice_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False),  # the rollup key of the tail
    Column("is_open", Boolean, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("head", Text, nullable=False),  # CSV cells customer_id .. due_date, each followed by a comma
    Column("tail", Text, nullable=False),  # a comma before each of the cells emails_sent .. last_viewed_at; LF
    # A comma before each of the cells open, status (portal/balances/position.py's stored position). '' only in a line
    # written before the positions existed: Store.migrate then rebuilds every line.
    Column("position_cells", Text, nullable=False, server_default=""),
)
# The default export (open invoices by due date) reads the lines in this index's order: no sort of 18 MB.
Index("ix_receipt_lines_open_due_date", receipt_lines.c.due_date, receipt_lines.c.invoice_id,
      postgresql_where=receipt_lines.c.is_open, sqlite_where=receipt_lines.c.is_open)


def lock(conn: Connection) -> None:
    """Take the refresh lock until the caller's transaction ends, without refreshing: the receipt lines'
    writers (portal/staff/receiptlines.py) hold it so an import and a refresh never interleave. PostgreSQL only
    (SQLite serialises every writer anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(receipt_rollup_state.c.id).where(receipt_rollup_state.c.id == STATE_ID)
                     .with_for_update())


def invoice_join() -> Any:
    """The ON clause that attaches an invoice's rollup row (an invoice's events are keyed by its customer too,
    so an invoice id under another customer never leaks into the row)."""
    return and_(receipt_rollup.c.invoice_id == invoices.c.invoice_id,
                receipt_rollup.c.customer_id == invoices.c.customer_id)
