"""Requests to an approver to approve an invoice for payment, sent from the invoice page.

An approver from the export (role `approver`) is mailed at once; an address the customer typed waits for the
collector (`awaiting_collector`) and is mailed only once staff confirmed it, so a typed address never receives
an invoice link the AR team did not agree to. The approver's mark ("approved for payment") is recorded once, with
its time; the timeline reads it from the events table too (kind `invoice_approved`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, Index, String, Table, insert, select, update
from sqlalchemy.engine import Connection

from portal.store.tables import ID, UTCDateTime, metadata

AWAITING, SENT, APPROVED, REFUSED = "awaiting_collector", "sent", "approved", "refused"

approval_requests = Table(
    "approval_requests", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("invoice_id", String(ID), nullable=False),
    Column("contact_id", String(ID), nullable=False, default=""),  # the export's approver ("" when typed)
    Column("email", String(320), nullable=False),
    Column("typed", Boolean, nullable=False, default=False),
    Column("status", String(20), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("approved_at", UTCDateTime, nullable=True),
    Index("ix_approval_requests_customer_id", "customer_id"),
    Index("ix_approval_requests_invoice_id", "invoice_id"),
)


@dataclass(frozen=True)
class ApprovalRequest:
    request_id: str
    customer_id: str
    invoice_id: str
    contact_id: str
    email: str
    typed: bool
    status: str
    requested_at: datetime
    sent_at: datetime | None
    approved_at: datetime | None


def _request(row: Any) -> ApprovalRequest:
    return ApprovalRequest(**{name: getattr(row, name) for name in ApprovalRequest.__dataclass_fields__})


def add(conn: Connection, **row: Any) -> None:
    conn.execute(insert(approval_requests).values(**row))


def get(conn: Connection, request_id: str) -> ApprovalRequest | None:
    row = conn.execute(select(approval_requests).where(approval_requests.c.request_id == request_id)).first()
    return None if row is None else _request(row)


def move(conn: Connection, request_id: str, from_status: str, to_status: str, **values: Any) -> bool:
    """Move a request forward from one state only; False when it was not in it (a second click, a race)."""
    c = approval_requests.c
    done = conn.execute(update(approval_requests).where(c.request_id == request_id, c.status == from_status)
                        .values(status=to_status, **values))
    return done.rowcount == 1


def requests(conn: Connection, customer_ids: list[str] | None = None, status: str | None = None
             ) -> list[ApprovalRequest]:
    c = approval_requests.c
    query = select(approval_requests).order_by(c.requested_at, c.request_id)
    if customer_ids is not None:
        query = query.where(c.customer_id.in_(sorted(set(customer_ids))))
    if status is not None:
        query = query.where(c.status == status)
    return [_request(r) for r in conn.execute(query)]
