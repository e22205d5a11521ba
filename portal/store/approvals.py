"""Requests to an approver to approve an invoice for payment, sent from the invoice page.

An approver from the export (role `approver`) is mailed at once; an address the customer typed waits for the
collector (`awaiting_collector`) and is mailed only once staff confirmed it, so a typed address never receives
an invoice link the AR team did not agree to. The approver's mark ("approved for payment") is recorded once, with
its time; the timeline reads it from the events table too (kind `invoice_approved`).

An invoice's approval, wherever it is shown (the customer's invoice page, the staff receipts table and its CSV, the
receipts report), is its FIRST approved request: the earliest `approved_at`, the lower request id on a tie. One rule
(`first_approval`, `approved_invoices`), so a second approver's click changes nothing anyone was shown.
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


def _first_approval_query(*columns: Any) -> Any:
    c = approval_requests.c
    return select(*columns).where(c.status == APPROVED).order_by(c.approved_at, c.request_id)


def first_approval(customer_id: Any, invoice_id: Any) -> tuple[Any, Any]:
    """(approved_at, approver address) of the invoice's first approval, as two scalar subqueries correlated to the
    given customer and invoice id columns (NULL when the invoice was never approved)."""
    c = approval_requests.c

    def one(column: Any) -> Any:
        return (_first_approval_query(column).where(c.customer_id == customer_id, c.invoice_id == invoice_id)
                .limit(1).scalar_subquery())

    return one(c.approved_at), one(c.email)


def first_approval_text(customer_id: Any, invoice_id: Any, cells: Any) -> Any:
    """One scalar subquery: `cells(approved_at, email)` (a SQL text expression) of the invoice's first approval,
    correlated as `first_approval`; NULL when never approved. For the receipts export's ready-made lines."""
    c = approval_requests.c
    return (_first_approval_query(cells(c.approved_at, c.email))
            .where(c.customer_id == customer_id, c.invoice_id == invoice_id).limit(1).scalar_subquery())


def approved_invoices(conn: Connection, customer_ids: list[str]) -> dict[str, dict[str, ApprovalRequest]]:
    """The customers' approved invoices: customer id -> invoice id -> its first approval (the module docstring's
    rule). One query for all the customers."""
    c = approval_requests.c
    found: dict[str, dict[str, ApprovalRequest]] = {}
    query = _first_approval_query(approval_requests).where(c.customer_id.in_(sorted(set(customer_ids))))
    for row in conn.execute(query):
        found.setdefault(row.customer_id, {}).setdefault(row.invoice_id, _request(row))
    return found


def requests(conn: Connection, customer_ids: list[str] | None = None, status: str | None = None
             ) -> list[ApprovalRequest]:
    c = approval_requests.c
    query = select(approval_requests).order_by(c.requested_at, c.request_id)
    if customer_ids is not None:
        query = query.where(c.customer_id.in_(sorted(set(customer_ids))))
    if status is not None:
        query = query.where(c.status == status)
    return [_request(r) for r in conn.execute(query)]
