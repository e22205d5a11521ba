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
    and_,
    select,
)
from sqlalchemy.engine import Connection

from portal.store.staff import receipt_rollup, receipt_rollup_state
from portal.store.tables import invoices

STATE_ID = 1  # the state row's id



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
