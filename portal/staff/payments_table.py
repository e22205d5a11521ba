"""The staff dashboard's payments table: every payment attempt with its allocations, the credit notes it used and
where each invoice it paid stands now; server-side paginated, sorted and filtered (portal/staff/paging.py), and
its CSV export (money in major units, times ISO 8601 UTC with Z, every cell through portal/staff/csvcells.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from portal.staff.csvcells import iso_utc, major_units
from portal.staff.exports import stream_parts
from portal.staff.paging import Page, fetch_page, matches_customer, sort_order
from portal.store.database import Store
from portal.store.payments import payment_allocations, payment_attempts, payment_credits
from portal.store.positions import invoice_positions
from portal.store.tables import customers

_POS = invoice_positions.c
_P = payment_attempts.c
PAYMENT_SORTS: dict[str, Any] = {
    "created_at": _P.created_at, "updated_at": _P.updated_at, "amount": _P.amount, "status": _P.status,
    "method": _P.method, "currency": _P.currency, "customer_id": _P.customer_id, "customer_name": customers.c.name,
    "unapplied": _P.unapplied, "refunded": _P.refunded,
}
PAYMENT_COLUMNS = [
    "attempt_id", "customer_id", "customer_name", "status", "method", "currency", "amount", "subtotal",
    "adjustment", "unapplied", "credit_applied", "refunded", "needs_review", "payer_email", "checkout_session",
    "payment_intent", "charge", "failure_reason", "created_at", "updated_at", "counted_at",
]
# CSV: allocations flattened into three ;-joined columns (invoice numbers, amounts chosen, amounts applied).
PAYMENT_CSV_COLUMNS = [*PAYMENT_COLUMNS, "invoice_numbers", "allocated", "applied", "credit_numbers",
                       "credits_used", "invoice_open", "invoice_status"]


def _payments_query(status: str | None, method: str | None, customer: str | None) -> Select:
    query = (select(payment_attempts, func.coalesce(customers.c.name, "").label("customer_name"))
             .select_from(payment_attempts.outerjoin(customers, customers.c.customer_id == _P.customer_id)))
    if status:
        query = query.where(_P.status == status)
    if method:
        query = query.where(_P.method == method)
    if customer:
        query = query.where(matches_customer(customer))
    return query


def _allocations(conn: Connection, attempt_ids: Sequence[str]) -> tuple[dict[str, list], dict[str, list]]:
    """Allocations and credits used of these attempts: two queries for the whole page or chunk."""
    allocs: dict[str, list[dict[str, Any]]] = {a: [] for a in attempt_ids}
    used: dict[str, list[dict[str, Any]]] = {a: [] for a in attempt_ids}
    if not attempt_ids:
        return allocs, used
    ids = list(attempt_ids)
    # With where each invoice stands now (its stored position, portal/balances/position.py).
    for r in conn.execute(select(payment_allocations, _POS.open_amount, _POS.status)
                          .select_from(payment_allocations.outerjoin(
                              invoice_positions, _POS.invoice_id == payment_allocations.c.invoice_id))
                          .where(payment_allocations.c.attempt_id.in_(ids))
                          .order_by(payment_allocations.c.attempt_id, payment_allocations.c.number,
                                    payment_allocations.c.invoice_id)):
        allocs[r.attempt_id].append({"invoice_id": r.invoice_id, "number": r.number, "amount": int(r.amount),
                                     "applied": int(r.applied), "status": r.status,
                                     "open": None if r.open_amount is None else int(r.open_amount)})
    for r in conn.execute(select(payment_credits).where(payment_credits.c.attempt_id.in_(ids))
                          .order_by(payment_credits.c.attempt_id, payment_credits.c.number,
                                    payment_credits.c.credit_id)):
        used[r.attempt_id].append({"credit_id": r.credit_id, "number": r.number, "amount": int(r.amount),
                                   "applied": int(r.applied)})
    return allocs, used


def _payment_row(r: Any, allocs: dict[str, list], used: dict[str, list]) -> dict[str, Any]:
    row = {c: getattr(r, c) for c in PAYMENT_COLUMNS}
    row["needs_review"] = bool(row["needs_review"])
    row["allocations"] = allocs.get(r.attempt_id, [])
    row["credits"] = used.get(r.attempt_id, [])
    return row


def payments_page(store: Store, *, status: str | None = None, method: str | None = None,
                  customer: str | None = None, sort: str = "created_at", descending: bool = True, page: int = 1,
                  per_page: int = 50) -> Page:
    """One page of payment attempts (keys: PAYMENT_COLUMNS plus `allocations` [{invoice_id, number, amount,
    applied}] and `credits` [{credit_id, number, amount, applied}]). Stripe ids: checkout_session,
    payment_intent, charge. Status: created, verifying, processing, succeeded, failed, expired, refunded,
    partially_refunded, disputed, reinstated. Method: card, us_bank_account."""

    def rows(conn: Connection, found: Sequence[Any]) -> list[dict[str, Any]]:
        allocs, used = _allocations(conn, [r.attempt_id for r in found])
        return [_payment_row(r, allocs, used) for r in found]

    return fetch_page(store, lambda: _payments_query(status, method, customer), PAYMENT_SORTS, _P.attempt_id,
                      sort=sort, descending=descending, page=page, per_page=per_page, rows=rows)


def payments_csv(store: Store, *, status: str | None = None, method: str | None = None,
                 customer: str | None = None, sort: str = "created_at", descending: bool = True) -> Iterator[str]:
    """Every payment attempt under the filters, in the table's order, as CSV (PAYMENT_CSV_COLUMNS)."""
    order = sort_order(PAYMENT_SORTS, sort, descending, _P.attempt_id)

    def chunk_rows(conn: Connection, part: Sequence[Any]) -> Iterable[list[Any]]:
        allocs, used = _allocations(conn, [r.attempt_id for r in part])
        for r in part:
            row = _payment_row(r, allocs, used)
            cur = row["currency"]
            for key in ("amount", "subtotal", "adjustment", "unapplied", "credit_applied", "refunded"):
                row[key] = major_units(row[key], cur)
            for key in ("created_at", "updated_at", "counted_at"):
                row[key] = iso_utc(row[key])
            row["invoice_numbers"] = ";".join(a["number"] for a in row["allocations"])
            row["allocated"] = ";".join(major_units(a["amount"], cur) or "" for a in row["allocations"])
            row["applied"] = ";".join(major_units(a["applied"], cur) or "" for a in row["allocations"])
            row["credit_numbers"] = ";".join(c["number"] for c in row["credits"])
            row["credits_used"] = ";".join(major_units(c["applied"], cur) or "" for c in row["credits"])
            row["invoice_open"] = ";".join(major_units(a["open"], cur) or "" for a in row["allocations"])
            row["invoice_status"] = ";".join(a["status"] or "" for a in row["allocations"])
            yield [row[c] for c in PAYMENT_CSV_COLUMNS]

    return stream_parts(store, _payments_query(status, method, customer).order_by(*order), PAYMENT_CSV_COLUMNS,
                        chunk_rows)
