"""Dispute and question tables and their queries.

The tables live on `portal.store.tables.metadata` (registered for Alembic in portal/store/registry.py). Names are
shared with readers that came first: portal/mail/reminders.py and portal/staff/digest.py reflect `disputes` (`status`,
`customer_id`, `created_at`, `reason`, `amount`, `currency`) and `dispute_invoices` (`dispute_id`,
`invoice_id`) when they exist. Customers and invoices are referred to by id, so a dispute outlives its
invoice leaving the export (a credit note closes it there; the dispute stays for the root-cause report).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, insert, select, update
from sqlalchemy.engine import Connection

from portal.store.tables import (
    ID,
    UTCDateTime,
    metadata,
)

# A serial id: it is the customer's reference number ("D-42"). Nothing is served by it, so it may be guessable.
_SERIAL = BigInteger().with_variant(Integer, "sqlite")

disputes = Table(
    "disputes", metadata,
    Column("dispute_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("status", String(20), nullable=False),  # open -> under_review -> resolved
    Column("reason", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),  # the sum of dispute_invoices.amount (minor units)
    Column("currency", String(3), nullable=False),
    Column("message", Text, nullable=False),
    Column("outcome", String(20), nullable=False, default=""),
    Column("note", Text, nullable=False, default=""),
    Column("updated_by", String(320), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reviewed_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
)

dispute_invoices = Table(
    "dispute_invoices", metadata,
    Column("dispute_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("invoice_id", String(ID), primary_key=True),
    Column("number", String(ID), nullable=False),
    Column("amount", BigInteger, nullable=False),
)

dispute_attachments = Table(
    "dispute_attachments", metadata,
    Column("dispute_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("filename", Text, nullable=False),  # sanitised
    Column("path", Text, nullable=False),  # the private object key in the target: disputes/<id>/<n>-<name>
    Column("content_type", String(100), nullable=False),  # sniffed from the content
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
)

questions = Table(
    "questions", metadata,
    Column("question_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("invoice_id", String(ID), nullable=False, default=""),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The contact on file who asked ("" when they did not say): the answer goes to them (portal/collect/answers.py).
    Column("contact_id", String(320), nullable=False, server_default=""),
)


@dataclass(frozen=True)
class DisputeRow:
    dispute_id: int
    customer_id: str
    status: str
    reason: str
    amount: int
    currency: str
    message: str
    outcome: str
    note: str
    updated_by: str
    created_at: datetime
    reviewed_at: datetime | None
    resolved_at: datetime | None


def _row(r: Any) -> DisputeRow:
    return DisputeRow(**{name: getattr(r, name) for name in DisputeRow.__dataclass_fields__})


def insert_dispute(conn: Connection, row: dict[str, Any], items: list[dict[str, Any]],
                   attachments: list[dict[str, Any]]) -> int:
    """Insert a dispute with its invoices and attachment rows; returns its id."""
    dispute_id = int(conn.execute(insert(disputes).values(**row).returning(disputes.c.dispute_id)).scalar_one())
    conn.execute(insert(dispute_invoices), [{**i, "dispute_id": dispute_id} for i in items])
    if attachments:
        conn.execute(insert(dispute_attachments), [{**a, "dispute_id": dispute_id} for a in attachments])
    return dispute_id


def set_attachment_paths(conn: Connection, dispute_id: int, paths: dict[int, str]) -> None:
    for n, path in paths.items():
        conn.execute(update(dispute_attachments).where(dispute_attachments.c.dispute_id == dispute_id,
                                                       dispute_attachments.c.n == n).values(path=path))


def get_dispute(conn: Connection, dispute_id: int, lock: bool = False) -> DisputeRow | None:
    query = select(disputes).where(disputes.c.dispute_id == dispute_id)
    if lock:
        query = query.with_for_update()
    r = conn.execute(query).first()
    return None if r is None else _row(r)


def update_dispute(conn: Connection, dispute_id: int, **values: Any) -> None:
    conn.execute(update(disputes).where(disputes.c.dispute_id == dispute_id).values(**values))


def items_of(conn: Connection, dispute_id: int) -> list[Any]:
    return conn.execute(select(dispute_invoices).where(dispute_invoices.c.dispute_id == dispute_id)
                        .order_by(dispute_invoices.c.invoice_id)).all()


def attachments_of(conn: Connection, dispute_id: int) -> list[Any]:
    return conn.execute(select(dispute_attachments).where(dispute_attachments.c.dispute_id == dispute_id)
                        .order_by(dispute_attachments.c.n)).all()


def get_attachment(conn: Connection, dispute_id: int, n: int) -> Any:
    return conn.execute(select(dispute_attachments).where(dispute_attachments.c.dispute_id == dispute_id,
                                                          dispute_attachments.c.n == n)).first()


def disputed_amounts(conn: Connection, customer_ids: Iterable[str] | None = None,
                     invoice_ids: Iterable[str] | None = None) -> dict[str, int]:
    """invoice_id -> the amount held in unresolved disputes (what cannot be paid until they are resolved)."""
    query = (select(dispute_invoices.c.invoice_id, dispute_invoices.c.amount)
             .join(disputes, disputes.c.dispute_id == dispute_invoices.c.dispute_id)
             .where(disputes.c.status != "resolved"))
    if customer_ids is not None:
        query = query.where(disputes.c.customer_id.in_(sorted(set(customer_ids))))
    if invoice_ids is not None:
        query = query.where(dispute_invoices.c.invoice_id.in_(sorted(set(invoice_ids))))
    result: dict[str, int] = {}
    for r in conn.execute(query):
        result[r.invoice_id] = result.get(r.invoice_id, 0) + r.amount
    return result


def dispute_states(conn: Connection, customer_ids: Iterable[str] | None = None) -> dict[str, list[tuple]]:
    """invoice_id -> [(dispute_id, status, outcome, amount)] of every dispute that names it, oldest first."""
    query = (select(dispute_invoices.c.invoice_id, disputes.c.dispute_id, disputes.c.status, disputes.c.outcome,
                    dispute_invoices.c.amount)
             .join(disputes, disputes.c.dispute_id == dispute_invoices.c.dispute_id)
             .order_by(disputes.c.dispute_id))
    if customer_ids is not None:
        query = query.where(disputes.c.customer_id.in_(sorted(set(customer_ids))))
    result: dict[str, list[tuple]] = {}
    for r in conn.execute(query):
        result.setdefault(r.invoice_id, []).append((r.dispute_id, r.status, r.outcome, r.amount))
    return result


def dispute_digests(conn: Connection) -> dict[str, str]:
    """customer_id -> a digest of its disputes' states: a build re-renders a customer when it changes."""
    parts: dict[str, list] = {}
    for r in conn.execute(select(disputes.c.customer_id, disputes.c.dispute_id, disputes.c.status,
                                 disputes.c.outcome).order_by(disputes.c.customer_id, disputes.c.dispute_id)):
        parts.setdefault(r.customer_id, []).append((r.dispute_id, r.status, r.outcome))
    return {cid: hashlib.sha256(repr(p).encode()).hexdigest() for cid, p in parts.items()}


def all_disputes(conn: Connection) -> list[DisputeRow]:
    return [_row(r) for r in conn.execute(select(disputes).order_by(disputes.c.dispute_id))]


def all_items(conn: Connection) -> dict[int, list[Any]]:
    result: dict[int, list[Any]] = {}
    for r in conn.execute(select(dispute_invoices).order_by(dispute_invoices.c.dispute_id,
                                                             dispute_invoices.c.invoice_id)):
        result.setdefault(r.dispute_id, []).append(r)
    return result


def insert_question(conn: Connection, customer_id: str, invoice_id: str, message: str, now: datetime,
                    contact_id: str = "") -> int:
    return int(conn.execute(insert(questions).values(customer_id=customer_id, invoice_id=invoice_id, message=message,
                                                     created_at=now, contact_id=contact_id)
                            .returning(questions.c.question_id)).scalar_one())
