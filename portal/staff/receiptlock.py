"""What the receipts' writers share: the lock that puts a rollup refresh and the receipt lines' writers one after
the other (the rollup state row, id `STATE_ID`), and the join that attaches an invoice's rollup row.

The tables themselves (`receipt_rollup`, `receipt_rollup_state`, `receipt_lines`) are the store's
(portal/store/staff.py). This module sits below both writers (portal/staff/receiptrollup.py and
portal/staff/receiptlines.py) because each reads the other's table: a rollup refresh rewrites the tails of the
lines it changed, and a line's tail is made from the rollup.
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
