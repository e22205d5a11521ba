"""The tables of what invoices owe (docs/balances.md): the position journal and the stored positions.

`position_entries` is the journal of money movements: whenever a payment attempt changes, portal/balances/journal.py
writes, in the same transaction, the change of what it settles and what it has pending on each invoice and credit
note, dated. `invoice_positions` holds each invoice's position as THE rule (portal/balances/rule.py) computes it,
for the SQL readers that cannot run the rule per row (KPIs, the receipts table, the receipt lines); only
portal/balances/stored.py writes it, in the transaction of every change that moves a position
(portal/store/derived.py). Money is integer minor units.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table, Text

from portal.store.tables import ID, UTCDateTime, metadata

_SERIAL = BigInteger().with_variant(Integer, "sqlite")

position_entries = Table(
    "position_entries", metadata,
    Column("entry_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False),
    Column("item_kind", String(10), nullable=False),  # "invoice" or "credit"
    Column("item_id", String(ID), nullable=False),
    Column("attempt_id", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # the attempt's state the movement came with
    Column("method", String(20), nullable=False),
    Column("settled", BigInteger, nullable=False),  # change of the money settled on the item (signed)
    Column("pending", BigInteger, nullable=False),  # change of the money on its way (signed)
    Column("note", Text, nullable=False, default=""),  # why a payment failed or was charged back
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_position_entries_item_kind_item_id", "item_kind", "item_id"),
    Index("ix_position_entries_customer_id", "customer_id"),
    Index("ix_position_entries_attempt_id", "attempt_id"),
    Index("ix_position_entries_recorded_at", "recorded_at"),
)

invoice_positions = Table(
    "invoice_positions", metadata,
    Column("invoice_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("due_date", Date, nullable=False),  # copied from the invoice: the KPIs' aging reads this table alone
    Column("status", String(20), nullable=False),
    Column("open_amount", BigInteger, nullable=False),
    Column("disputed_amount", BigInteger, nullable=False),
    Column("pending_amount", BigInteger, nullable=False),
    Column("paid_amount", BigInteger, nullable=False),
    # No secondary index: its readers scan it whole (KPIs) or join it by invoice id; each index would cost every
    # import (a first import of 100,000 invoices) another B-tree to fill.
)
