"""The staff dashboard's receipts table: per invoice, what was sent, fetched, viewed by a person and downloaded,
when and by whom it was approved for payment, and what it owes now; server-side paginated, sorted and filtered
(portal/staff/paging.py), and its CSV export.

Receipts come from the receipt rollup (portal/staff/receiptrollup.py), refreshed first, and what an invoice owes
from its stored position (portal/balances/position.py). The CSV export streams every row the filtered table
shows: on PostgreSQL the ready-made receipt lines (portal/staff/receiptlines.py), elsewhere cells formatted in
Python (portal/staff/csvcells.py): the same bytes either way (tests/staff/test_receipts_table.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, literal, or_, select
from sqlalchemy.sql import Select

from portal.staff import pgcsv, receiptlines, receiptrollup
from portal.staff.csvcells import iso_utc, major_units
from portal.staff.exports import stream_rows
from portal.staff.paging import Page, check_paging, matches_customer, sort_order
from portal.staff.receiptlock import invoice_join
from portal.store.approvals import first_approval
from portal.store.database import Store
from portal.store.positions import invoice_positions
from portal.store.staff import receipt_lines, receipt_rollup
from portal.store.tables import customers, invoices


@dataclass(frozen=True)
class ReceiptFilter:
    """Filters of the receipts table; None means "any".

    `unopened_days`: open invoices no person has viewed (no `page_viewed`) whose first email was sent (or, when
    none was recorded, which first appeared in an export) more than N days before now: the rule of the receipts
    report (portal/staff/receipts_report.py).
    `min_amount`/`max_amount`: bounds on what the invoice owes now (its stored position's open amount,
    portal/balances/position.py), in minor units. `customer`: a customer id (exact) or
    a part of the name (case-insensitive). `include_closed`: also closed invoices that have events."""

    unopened_days: int | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    group: str | None = None
    collector: str | None = None
    customer: str | None = None
    currency: str | None = None
    include_closed: bool = False


_ZERO = literal(0)
_R = receipt_rollup.c
_POS = invoice_positions.c
RECEIPT_FIELDS = {
    "emails_sent": func.coalesce(_R.emails_sent, _ZERO),
    "link_opened": func.coalesce(_R.link_opened, _ZERO),
    "page_viewed": func.coalesce(_R.page_viewed, _ZERO),
    "documents_viewed": func.coalesce(_R.documents_viewed, _ZERO),
}
RECEIPT_SORTS: dict[str, Any] = {
    "due_date": invoices.c.due_date,
    "number": invoices.c.number,
    "invoice_id": invoices.c.invoice_id,
    "customer_id": invoices.c.customer_id,
    "customer_name": customers.c.name,
    "group_name": customers.c.group_name,
    "collector": customers.c.collector,
    "currency": invoices.c.currency,
    "amount": invoices.c.amount,
    "balance": invoices.c.balance,
    "open": _POS.open_amount,
    "status": _POS.status,
    **RECEIPT_FIELDS,
    "first_sent_at": _R.first_sent_at,
    "first_opened_at": _R.first_opened_at,
    "first_viewed_at": _R.first_viewed_at,
    "last_viewed_at": _R.last_viewed_at,
}
# Plus "days_overdue": days past due grow as the due date gets older, so it is due_date the other way round.
RECEIPT_SORT_NAMES = sorted([*RECEIPT_SORTS, "days_overdue"])

RECEIPT_COLUMNS = [
    "customer_id", "customer_name", "group_name", "collector", "invoice_id", "number", "is_open", "currency",
    "amount", "balance", "due_date", "days_overdue", "open", "status", "emails_sent", "link_opened", "page_viewed",
    "documents_viewed", "first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at",
    "approved_at", "approved_by",
]


_CUSTOMER_SORTS = {"customer_name", "group_name", "collector"}
_ROLLUP_SORTS = {*RECEIPT_FIELDS, "first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at"}
_POSITION_SORTS = {"open", "status"}


def _receipts_from(with_customers: bool, with_rollup: bool, with_positions: bool = True) -> Any:
    joined: Any = invoices
    if with_customers:
        joined = joined.outerjoin(customers, customers.c.customer_id == invoices.c.customer_id)
    if with_rollup:
        joined = joined.outerjoin(receipt_rollup, invoice_join())
    if with_positions:
        joined = joined.outerjoin(invoice_positions, _POS.invoice_id == invoices.c.invoice_id)
    return joined


def _receipts_where(query: Select, flt: ReceiptFilter, now: datetime) -> Select:
    # As the receipts report (portal/staff/receipts_report.py): every open invoice; closed ones only with events,
    # and only when asked for.
    query = query.where(or_(invoices.c.is_open, _R.invoice_id.is_not(None)) if flt.include_closed
                        else invoices.c.is_open)
    if flt.unopened_days is not None:
        cutoff = now - timedelta(days=flt.unopened_days)
        query = query.where(invoices.c.is_open, RECEIPT_FIELDS["page_viewed"] == 0,
                            func.coalesce(_R.first_sent_at, invoices.c.first_seen_at) <= cutoff)
    if flt.min_amount is not None:
        query = query.where(_POS.open_amount >= flt.min_amount)
    if flt.max_amount is not None:
        query = query.where(_POS.open_amount <= flt.max_amount)
    if flt.group:
        query = query.where(customers.c.group_name == flt.group)
    if flt.collector:
        query = query.where(func.lower(customers.c.collector) == flt.collector.lower())
    if flt.customer:
        query = query.where(matches_customer(flt.customer))
    if flt.currency:
        query = query.where(invoices.c.currency == flt.currency.upper())
    return query


def _receipt_ids(flt: ReceiptFilter, now: datetime, sort: str) -> Select:
    """The narrow query that decides which invoices match, and their order: it joins customers and the rollup
    only when a filter or the sort needs them, so sorting 100,000 invoices moves ids, not whole rows."""
    query = select(invoices.c.invoice_id).select_from(_receipts_from(*_joins_needed(flt, sort)))
    return _receipts_where(query, flt, now)


def _joins_needed(flt: ReceiptFilter, sort: str) -> tuple[bool, bool, bool]:
    """Whether the filter or the sort needs (customers, the rollup, the stored positions)."""
    with_customers = sort in _CUSTOMER_SORTS or bool(flt.group or flt.collector or flt.customer)
    with_rollup = sort in _ROLLUP_SORTS or flt.unopened_days is not None or flt.include_closed
    with_positions = sort in _POSITION_SORTS or flt.min_amount is not None or flt.max_amount is not None
    return with_customers, with_rollup, with_positions


_RECEIPT_SELECT = [
    invoices.c.customer_id, func.coalesce(customers.c.name, "").label("customer_name"),
    func.coalesce(customers.c.group_name, "").label("group_name"),
    func.coalesce(customers.c.collector, "").label("collector"),
    invoices.c.invoice_id, invoices.c.number, invoices.c.is_open, invoices.c.currency,
    invoices.c.amount, invoices.c.balance, invoices.c.due_date,
    _POS.open_amount, _POS.status,
    *[expr.label(name) for name, expr in RECEIPT_FIELDS.items()],
    _R.first_sent_at, _R.first_opened_at, _R.first_viewed_at, _R.last_viewed_at,
    # The invoice's first approval for payment (portal/store/approvals.py): by subquery, read for the rows shown
    # only, never to decide which rows match.
    *[expr.label(name) for name, expr in zip(
        ("approved_at", "approved_by"), first_approval(invoices.c.customer_id, invoices.c.invoice_id), strict=True)],
]


def _receipts_query(flt: ReceiptFilter, now: datetime) -> Select:
    """Every column of every matching row (the CSV export: one pass, no paging)."""
    return _receipts_where(select(*_RECEIPT_SELECT).select_from(_receipts_from(True, True, True)), flt, now)


def _receipt_order(sort: str, descending: bool) -> list[Any]:
    if sort == "days_overdue":
        return sort_order(RECEIPT_SORTS, "due_date", not descending, invoices.c.invoice_id)
    return sort_order(RECEIPT_SORTS, sort, descending, invoices.c.invoice_id)


def _days_overdue(is_open: bool, due: date, today: date) -> int:
    """Days past the due date for an open invoice (0 when not due yet, or closed)."""
    return max(0, (today - due).days) if is_open else 0


def _receipt_row(r: Any, today: date) -> dict[str, Any]:
    return {
        "customer_id": r.customer_id, "customer_name": r.customer_name, "group_name": r.group_name,
        "collector": r.collector, "invoice_id": r.invoice_id, "number": r.number, "is_open": bool(r.is_open),
        "currency": r.currency, "amount": int(r.amount), "balance": int(r.balance), "due_date": r.due_date,
        "days_overdue": _days_overdue(bool(r.is_open), r.due_date, today),
        "open": None if r.open_amount is None else int(r.open_amount), "status": r.status,
        "emails_sent": int(r.emails_sent), "link_opened": int(r.link_opened), "page_viewed": int(r.page_viewed),
        "documents_viewed": int(r.documents_viewed), "first_sent_at": r.first_sent_at,
        "first_opened_at": r.first_opened_at, "first_viewed_at": r.first_viewed_at,
        "last_viewed_at": r.last_viewed_at, "approved_at": r.approved_at, "approved_by": r.approved_by,
    }


def receipts_page(store: Store, flt: ReceiptFilter | None = None, *, sort: str = "due_date",
                  descending: bool = False, page: int = 1, per_page: int = 50, now: datetime | None = None,
                  refresh: bool = True) -> Page:
    """One page of the receipts table (keys: RECEIPT_COLUMNS; sorts: RECEIPT_SORTS plus days_overdue).
    `link_opened` is a fetch of the emailed link (possibly a mail scanner); `page_viewed` a person's view."""
    flt = flt or ReceiptFilter()
    now = now or datetime.now(UTC)
    check_paging(page, per_page)
    order = _receipt_order(sort, descending)
    if refresh:
        receiptrollup.refresh(store)
    ids = _receipt_ids(flt, now, "due_date" if sort == "days_overdue" else sort)
    # A filter through the rollup (unopened, closed with events) makes the count join every invoice to the
    # rollup: count in the same pass as the page instead (measured: ~half the time at 100,000 invoices). A
    # sort through the rollup alone keeps the separate count, which needs no rollup and is cheap, because a
    # window count would hold every row before the top-N sort.
    with_rollup = flt.unopened_days is not None or flt.include_closed
    if with_rollup:
        ids = ids.add_columns(func.count().over().label("total"))
    # The page's ids first (LIMIT/OFFSET on the narrow query), then their full rows: one statement.
    page_ids = ids.order_by(*order).limit(per_page).offset((page - 1) * per_page).subquery("page_ids")
    rows_query = (select(*_RECEIPT_SELECT, *([page_ids.c.total] if with_rollup else []))
                  .select_from(page_ids.join(invoices, invoices.c.invoice_id == page_ids.c.invoice_id)
                               .outerjoin(customers, customers.c.customer_id == invoices.c.customer_id)
                               .outerjoin(receipt_rollup, invoice_join())
                               .outerjoin(invoice_positions, _POS.invoice_id == invoices.c.invoice_id))
                  .order_by(*order))
    with store.begin() as conn:
        rows = conn.execute(rows_query).all()
        if with_rollup and rows:
            total = int(rows[0].total)
        else:  # no rollup join (an index-backed count is cheap), or a page past the end
            total = conn.execute(select(func.count()).select_from(_receipt_ids(flt, now, "due_date")
                                                                 .subquery())).scalar_one()
    today = now.astimezone(UTC).date()
    return Page([_receipt_row(r, today) for r in rows], total, page, per_page, sort, descending)


def receipt_lines_query(flt: ReceiptFilter, sort: str, descending: bool, now: datetime) -> tuple[Select, bool]:
    """The ready-made lines of the matching invoices in the table's order (PostgreSQL; portal/staff/receiptlines.py),
    and whether that order is the lines' own index's.

    The default export (open invoices by due date, no filter) reads the lines alone, in their index's order.
    Any other filter or sort decides which invoices and in what order as the pages do (joining customers and
    the rollup only when needed) and takes each invoice's line by its id."""
    lines = receipt_lines
    today = cast(literal(now.astimezone(UTC).date().isoformat()), Date)
    if flt == ReceiptFilter() and sort in ("due_date", "days_overdue"):
        overdue = receiptlines.days_overdue(lines.c.is_open, lines.c.due_date, today)
        # due_date is never NULL: plain ASC/DESC (no NULLS LAST) is the same order, and the index's both ways.
        later_first = descending == (sort == "due_date")
        order = ([lines.c.due_date.desc(), lines.c.invoice_id.desc()] if later_first
                 else [lines.c.due_date.asc(), lines.c.invoice_id.asc()])
        return (select(lines.c.head + overdue + lines.c.position_cells + lines.c.tail).where(lines.c.is_open)
                .order_by(*order), True)
    joined = _receipts_from(*_joins_needed(flt, "due_date" if sort == "days_overdue" else sort))
    overdue = receiptlines.days_overdue(invoices.c.is_open, invoices.c.due_date, today)
    query = select(lines.c.head + overdue + lines.c.position_cells + lines.c.tail).select_from(
        joined.join(lines, lines.c.invoice_id == invoices.c.invoice_id))
    return _receipts_where(query, flt, now).order_by(*_receipt_order(sort, descending)), False


def receipts_csv(store: Store, flt: ReceiptFilter | None = None, sort: str = "due_date",
                 descending: bool = False, *, now: datetime | None = None, refresh: bool = True,
                 copy: bool = True) -> Iterator[str]:
    """Every row of the receipts table under `flt`, in the table's order, as CSV (RECEIPT_COLUMNS).

    On PostgreSQL (unless `copy=False`) the rows are the receipt lines the server keeps ready-made
    (portal/staff/receiptlines.py), the same bytes as the Python path's (tests/staff/test_receipts_table.py
    compares the two byte for byte)."""
    flt = flt or ReceiptFilter()
    now = now or datetime.now(UTC)
    order = _receipt_order(sort, descending)  # refuse a bad sort before the first chunk
    if refresh:
        receiptrollup.refresh(store)
    today = now.astimezone(UTC).date()
    if copy and store.engine.dialect.name == "postgresql":
        query, index_order = receipt_lines_query(flt, sort, descending, now)
        return pgcsv.stream_lines(store, query, RECEIPT_COLUMNS, index_order=index_order)

    def cells(r: Any) -> list[Any]:
        row = _receipt_row(r, today)
        cur = row["currency"]
        row.update(amount=major_units(row["amount"], cur), balance=major_units(row["balance"], cur),
                   open=major_units(row["open"], cur),
                   due_date=row["due_date"].isoformat(),
                   **{k: iso_utc(row[k]) for k in ("first_sent_at", "first_opened_at", "first_viewed_at",
                                                "last_viewed_at", "approved_at")})
        return [row[c] for c in RECEIPT_COLUMNS]

    return stream_rows(store, _receipts_query(flt, now).order_by(*order), RECEIPT_COLUMNS, cells)
