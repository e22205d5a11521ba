"""The staff dashboard's disputes queue: every dispute with its invoices (and where each stands now) and its
attachment count; server-side paginated, sorted and filtered (portal/staff/paging.py), and its CSV export.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from portal.disputes.service import reference
from portal.staff.csvcells import iso_utc, major_units
from portal.staff.exports import stream_parts
from portal.staff.paging import Page, fetch_page, matches_customer, sort_order
from portal.store.database import Store
from portal.store.disputes import dispute_attachments, dispute_invoices, disputes, get_dispute
from portal.store.positions import invoice_positions
from portal.store.tables import customers

_ZERO = literal(0)
_POS = invoice_positions.c
DISPUTE_STATES = ("open", "under_review", "resolved")
_D = disputes.c
DISPUTE_SORTS: dict[str, Any] = {
    "created_at": _D.created_at, "dispute_id": _D.dispute_id, "amount": _D.amount, "status": _D.status,
    "reason": _D.reason, "currency": _D.currency, "customer_id": _D.customer_id, "customer_name": customers.c.name,
    "reviewed_at": _D.reviewed_at, "resolved_at": _D.resolved_at,
}
DISPUTE_COLUMNS = [
    "dispute_id", "reference", "customer_id", "customer_name", "collector", "status", "reason", "amount",
    "currency", "message", "outcome", "note", "updated_by", "created_at", "reviewed_at", "resolved_at",
    "attachments", "invoice_ids", "numbers", "invoice_open", "invoice_status",
]


def _disputes_query(state: str | None, reason: str | None, customer: str | None) -> Select:
    counts = (select(dispute_attachments.c.dispute_id, func.count().label("n"))
              .group_by(dispute_attachments.c.dispute_id).subquery("attachment_counts"))
    query = (select(disputes, func.coalesce(customers.c.name, "").label("customer_name"),
                    func.coalesce(customers.c.collector, "").label("collector"),
                    func.coalesce(counts.c.n, _ZERO).label("attachments"))
             .select_from(disputes.outerjoin(customers, customers.c.customer_id == _D.customer_id)
                          .outerjoin(counts, counts.c.dispute_id == _D.dispute_id)))
    if state == "unresolved":
        query = query.where(_D.status != "resolved")
    elif state:
        if state not in DISPUTE_STATES:
            raise ValueError(f"unknown state {state!r}: one of {', '.join(DISPUTE_STATES)} or unresolved")
        query = query.where(_D.status == state)
    if reason:
        query = query.where(_D.reason == reason)
    if customer:
        query = query.where(matches_customer(customer))
    return query


def _dispute_items(conn: Connection, ids: Sequence[int]) -> dict[int, list[Any]]:
    items: dict[int, list[Any]] = {i: [] for i in ids}
    if ids:  # with where each invoice stands now (its stored position, portal/balances/position.py)
        for r in conn.execute(select(dispute_invoices, _POS.open_amount, _POS.status)
                              .select_from(dispute_invoices.outerjoin(
                                  invoice_positions, _POS.invoice_id == dispute_invoices.c.invoice_id))
                              .where(dispute_invoices.c.dispute_id.in_(list(ids)))
                              .order_by(dispute_invoices.c.dispute_id, dispute_invoices.c.invoice_id)):
            items[r.dispute_id].append(r)
    return items


def _dispute_row(r: Any, items: dict[int, list[Any]]) -> dict[str, Any]:
    row = {c: getattr(r, c) for c in DISPUTE_COLUMNS
           if c not in {"reference", "invoice_ids", "numbers", "invoice_open", "invoice_status"}}
    row["reference"] = reference(r.dispute_id)
    row["attachments"] = int(r.attachments)
    mine = items.get(r.dispute_id, [])
    row["invoice_ids"] = [i.invoice_id for i in mine]
    row["numbers"] = [i.number for i in mine]
    row["items"] = [{"invoice_id": i.invoice_id, "number": i.number, "amount": int(i.amount), "status": i.status,
                     "open": None if i.open_amount is None else int(i.open_amount)} for i in mine]
    return row


def disputes_page(store: Store, *, state: str | None = None, reason: str | None = None,
                  customer: str | None = None, sort: str = "created_at", descending: bool = False, page: int = 1,
                  per_page: int = 50) -> Page:
    """One page of the disputes queue, oldest first by default (keys: DISPUTE_COLUMNS plus `items`
    [{invoice_id, number, amount}]). `state`: open, under_review, resolved, "unresolved" (open or under
    review) or None (all). `attachments` is a count; `reference` is what the customer was told (D-42)."""

    def rows(conn: Connection, found: Sequence[Any]) -> list[dict[str, Any]]:
        items = _dispute_items(conn, [r.dispute_id for r in found])
        return [_dispute_row(r, items) for r in found]

    return fetch_page(store, lambda: _disputes_query(state, reason, customer), DISPUTE_SORTS, _D.dispute_id,
                      sort=sort, descending=descending, page=page, per_page=per_page, rows=rows)


def disputes_csv(store: Store, *, state: str | None = None, reason: str | None = None,
                 customer: str | None = None, sort: str = "created_at", descending: bool = False) -> Iterator[str]:
    """Every dispute under the filters, in the queue's order, as CSV (DISPUTE_COLUMNS; lists joined by ;)."""
    order = sort_order(DISPUTE_SORTS, sort, descending, _D.dispute_id)

    def chunk_rows(conn: Connection, part: Sequence[Any]) -> Iterable[list[Any]]:
        items = _dispute_items(conn, [r.dispute_id for r in part])
        for r in part:
            row = _dispute_row(r, items)
            row["amount"] = major_units(row["amount"], row["currency"])
            for key in ("created_at", "reviewed_at", "resolved_at"):
                row[key] = iso_utc(row[key])
            row["invoice_ids"] = ";".join(row["invoice_ids"])
            row["numbers"] = ";".join(row["numbers"])
            row["invoice_open"] = ";".join(major_units(i["open"], row["currency"]) or "" for i in row["items"])
            row["invoice_status"] = ";".join(i["status"] or "" for i in row["items"])
            yield [row[c] for c in DISPUTE_COLUMNS]

    return stream_parts(store, _disputes_query(state, reason, customer).order_by(*order), DISPUTE_COLUMNS,
                        chunk_rows)


def dispute_state(store: Store, dispute_id: int) -> str:
    """The dispute's state now, as the queue says it after an action ("D-42 is under review"); "" for an unknown
    id. Said by us from the database: the address that asks only names the dispute, so a link cannot put words
    of its own on the page."""
    with store.begin() as conn:
        row = get_dispute(conn, dispute_id)
    if row is None:
        return ""
    return f"{reference(row.dispute_id)} is {row.status.replace('_', ' ')}"
