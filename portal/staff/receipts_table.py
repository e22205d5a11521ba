"""The staff dashboard's tables: server-side paginated, sorted and filtered queries, and their CSV exports.

Each page is ONE query for its rows plus one COUNT (payments and disputes add one query for the whole page's
allocations or invoices: never one per row). Sorting goes through a whitelist (name -> column); an unknown
name raises ValueError (the view answers 400), and every order ends with the table's unique id so pages are
stable. Receipts come from the receipt rollup (portal/staff/receiptrollup.py), refreshed first.

Rows are plain dicts: money in integer minor units with its `currency`, times as aware UTC datetimes, dates as
dates (templates format them). CSV exports are generators of str chunks that stream from a server-side cursor;
there money is a decimal string in major units (12.50), times ISO-8601 UTC with Z, and every cell goes through
`reports.csv_cell` (formula-injection guard). Nothing here imports Flask.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, and_, cast, func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from portal.balances.position import invoice_positions
from portal.core.money import to_decimal
from portal.staff import pgcsv, receiptlines, receiptrollup, reports
from portal.staff.receiptrollup import receipt_rollup
from portal.store.database import Store, customers, events, invoices
from portal.store.disputes import dispute_attachments, dispute_invoices, disputes
from portal.store.payments import payment_allocations, payment_attempts, payment_credits

MAX_PER_PAGE = 500
CHUNK_ROWS = 2000  # rows per streamed CSV chunk (and per server-side cursor fetch)


@dataclass(frozen=True)
class ReceiptFilter:
    """Filters of the receipts table; None means "any".

    `unopened_days`: open invoices no person has viewed (no `page_viewed`) whose first email was sent (or, when
    none was recorded, which first appeared in an export) more than N days before now: reports.receipts' rule.
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


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int  # rows matching the filters, on every page
    page: int  # 1-based
    per_page: int
    sort: str
    descending: bool

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def _check_paging(page: int, per_page: int) -> None:
    if page < 1:
        raise ValueError(f"page {page}: pages start at 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page {per_page}: between 1 and {MAX_PER_PAGE}")


def _order(sorts: dict[str, Any], sort: str, descending: bool, tiebreak: Any) -> list[Any]:
    """ORDER BY for a whitelisted sort; NULLs last both ways (SQLite and PostgreSQL disagree otherwise)."""
    if sort not in sorts:
        raise ValueError(f"unknown sort {sort!r}: one of {', '.join(sorted(sorts))}")
    column = sorts[sort]
    key = column.desc() if descending else column.asc()
    return [key.nulls_last(), tiebreak.desc() if descending else tiebreak.asc()]


def _matches_customer(text: str) -> Any:
    """Customer id exactly, or a case-insensitive part of the customer's name."""
    return or_(customers.c.customer_id == text,
               func.lower(customers.c.name).contains(text.lower(), autoescape=True))


def _money(minor: int | None, currency: str) -> str | None:
    return None if minor is None else str(to_decimal(int(minor), currency))


# --- receipts ------------------------------------------------------------------------------------------------

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
]


_CUSTOMER_SORTS = {"customer_name", "group_name", "collector"}
_ROLLUP_SORTS = {*RECEIPT_FIELDS, "first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at"}
_POSITION_SORTS = {"open", "status"}


def _receipts_from(with_customers: bool, with_rollup: bool, with_positions: bool = True) -> Any:
    joined: Any = invoices
    if with_customers:
        joined = joined.outerjoin(customers, customers.c.customer_id == invoices.c.customer_id)
    if with_rollup:
        joined = joined.outerjoin(receipt_rollup, receiptrollup.invoice_join())
    if with_positions:
        joined = joined.outerjoin(invoice_positions, _POS.invoice_id == invoices.c.invoice_id)
    return joined


def _receipts_where(query: Select, flt: ReceiptFilter, now: datetime) -> Select:
    # As reports.receipts: every open invoice; closed ones only with events, and only when asked for.
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
        query = query.where(_matches_customer(flt.customer))
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
]


def _receipts_query(flt: ReceiptFilter, now: datetime) -> Select:
    """Every column of every matching row (the CSV export: one pass, no paging)."""
    return _receipts_where(select(*_RECEIPT_SELECT).select_from(_receipts_from(True, True, True)), flt, now)


def _receipt_order(sort: str, descending: bool) -> list[Any]:
    if sort == "days_overdue":
        return _order(RECEIPT_SORTS, "due_date", not descending, invoices.c.invoice_id)
    return _order(RECEIPT_SORTS, sort, descending, invoices.c.invoice_id)


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
        "last_viewed_at": r.last_viewed_at,
    }


def receipts_page(store: Store, flt: ReceiptFilter | None = None, *, sort: str = "due_date",
                  descending: bool = False, page: int = 1, per_page: int = 50, now: datetime | None = None,
                  refresh: bool = True) -> Page:
    """One page of the receipts table (keys: RECEIPT_COLUMNS; sorts: RECEIPT_SORTS plus days_overdue).
    `link_opened` is a fetch of the emailed link (possibly a mail scanner); `page_viewed` a person's view."""
    flt = flt or ReceiptFilter()
    now = now or datetime.now(UTC)
    _check_paging(page, per_page)
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
                               .outerjoin(receipt_rollup, receiptrollup.invoice_join())
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


def _receipt_lines_query(flt: ReceiptFilter, sort: str, descending: bool, now: datetime) -> tuple[Select, bool]:
    """The ready-made lines of the matching invoices in the table's order (PostgreSQL; portal/staff/receiptlines.py),
    and whether that order is the lines' own index's.

    The default export (open invoices by due date, no filter) reads the lines alone, in their index's order.
    Any other filter or sort decides which invoices and in what order as the pages do (joining customers and
    the rollup only when needed) and takes each invoice's line by its id."""
    lines = receiptlines.receipt_lines
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
    (portal/staff/receiptlines.py), the same bytes as the Python path's (tests/test_stafftables.py compares the two
    byte for byte)."""
    flt = flt or ReceiptFilter()
    now = now or datetime.now(UTC)
    order = _receipt_order(sort, descending)  # refuse a bad sort before the first chunk
    if refresh:
        receiptrollup.refresh(store)
    today = now.astimezone(UTC).date()
    if copy and store.engine.dialect.name == "postgresql":
        query, index_order = _receipt_lines_query(flt, sort, descending, now)
        return pgcsv.stream_lines(store, query, RECEIPT_COLUMNS, index_order=index_order)

    def cells(r: Any) -> list[Any]:
        row = _receipt_row(r, today)
        cur = row["currency"]
        row.update(amount=_money(row["amount"], cur), balance=_money(row["balance"], cur),
                   open=_money(row["open"], cur),
                   due_date=row["due_date"].isoformat(),
                   **{k: reports.iso_utc(row[k]) for k in ("first_sent_at", "first_opened_at", "first_viewed_at",
                                                "last_viewed_at")})
        return [row[c] for c in RECEIPT_COLUMNS]

    return _stream(store, _receipts_query(flt, now).order_by(*order), RECEIPT_COLUMNS, cells)


# --- payments ------------------------------------------------------------------------------------------------

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
        query = query.where(_matches_customer(customer))
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
    _check_paging(page, per_page)
    order = _order(PAYMENT_SORTS, sort, descending, _P.attempt_id)
    query = _payments_query(status, method, customer)
    with store.begin() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
        allocs, used = _allocations(conn, [r.attempt_id for r in rows])
    return Page([_payment_row(r, allocs, used) for r in rows], int(total), page, per_page, sort, descending)


def payments_csv(store: Store, *, status: str | None = None, method: str | None = None,
                 customer: str | None = None, sort: str = "created_at", descending: bool = True) -> Iterator[str]:
    """Every payment attempt under the filters, in the table's order, as CSV (PAYMENT_CSV_COLUMNS)."""
    order = _order(PAYMENT_SORTS, sort, descending, _P.attempt_id)

    def chunk_rows(conn: Connection, part: Sequence[Any]) -> Iterable[list[Any]]:
        allocs, used = _allocations(conn, [r.attempt_id for r in part])
        for r in part:
            row = _payment_row(r, allocs, used)
            cur = row["currency"]
            for key in ("amount", "subtotal", "adjustment", "unapplied", "credit_applied", "refunded"):
                row[key] = _money(row[key], cur)
            for key in ("created_at", "updated_at", "counted_at"):
                row[key] = reports.iso_utc(row[key])
            row["invoice_numbers"] = ";".join(a["number"] for a in row["allocations"])
            row["allocated"] = ";".join(_money(a["amount"], cur) or "" for a in row["allocations"])
            row["applied"] = ";".join(_money(a["applied"], cur) or "" for a in row["allocations"])
            row["credit_numbers"] = ";".join(c["number"] for c in row["credits"])
            row["credits_used"] = ";".join(_money(c["applied"], cur) or "" for c in row["credits"])
            row["invoice_open"] = ";".join(_money(a["open"], cur) or "" for a in row["allocations"])
            row["invoice_status"] = ";".join(a["status"] or "" for a in row["allocations"])
            yield [row[c] for c in PAYMENT_CSV_COLUMNS]

    return _stream_parts(store, _payments_query(status, method, customer).order_by(*order), PAYMENT_CSV_COLUMNS,
                         chunk_rows)


# --- disputes ------------------------------------------------------------------------------------------------

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
        query = query.where(_matches_customer(customer))
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
    from portal.disputes.service import reference

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
    _check_paging(page, per_page)
    order = _order(DISPUTE_SORTS, sort, descending, _D.dispute_id)
    query = _disputes_query(state, reason, customer)
    with store.begin() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(query.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
        items = _dispute_items(conn, [r.dispute_id for r in rows])
    return Page([_dispute_row(r, items) for r in rows], int(total), page, per_page, sort, descending)


def disputes_csv(store: Store, *, state: str | None = None, reason: str | None = None,
                 customer: str | None = None, sort: str = "created_at", descending: bool = False) -> Iterator[str]:
    """Every dispute under the filters, in the queue's order, as CSV (DISPUTE_COLUMNS; lists joined by ;)."""
    order = _order(DISPUTE_SORTS, sort, descending, _D.dispute_id)

    def chunk_rows(conn: Connection, part: Sequence[Any]) -> Iterable[list[Any]]:
        items = _dispute_items(conn, [r.dispute_id for r in part])
        for r in part:
            row = _dispute_row(r, items)
            row["amount"] = _money(row["amount"], row["currency"])
            for key in ("created_at", "reviewed_at", "resolved_at"):
                row[key] = reports.iso_utc(row[key])
            row["invoice_ids"] = ";".join(row["invoice_ids"])
            row["numbers"] = ";".join(row["numbers"])
            row["invoice_open"] = ";".join(_money(i["open"], row["currency"]) or "" for i in row["items"])
            row["invoice_status"] = ";".join(i["status"] or "" for i in row["items"])
            yield [row[c] for c in DISPUTE_COLUMNS]

    return _stream_parts(store, _disputes_query(state, reason, customer).order_by(*order), DISPUTE_COLUMNS,
                         chunk_rows)


# --- customers and their timeline ----------------------------------------------------------------------------

CUSTOMER_COLUMNS = ["customer_id", "name", "currency", "locale", "group_name", "collector", "active",
                    "first_seen_at", "last_seen_at"]
TIMELINE_COLUMNS = ["event_id", "occurred_at", "kind", "invoice_id", "number", "contact_id", "document_id", "ip",
                    "user_agent", "detail"]


def customers_search(store: Store, q: str, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose id is `q` (first), whose id starts with it, or whose name contains it (both
    case-insensitive); active first, then by name."""
    q = q.strip()
    if not q:
        return []
    exact = customers.c.customer_id == q
    matches = or_(_matches_customer(q), func.lower(customers.c.customer_id).startswith(q.lower(), autoescape=True))
    query = (select(*[customers.c[c] for c in CUSTOMER_COLUMNS]).where(matches)
             .order_by(exact.desc(), customers.c.active.desc(), customers.c.name, customers.c.customer_id)
             .limit(max(1, min(limit, 100))))
    with store.begin() as conn:
        return [{**r._asdict(), "active": bool(r.active)} for r in conn.execute(query)]


def customer(store: Store, customer_id: str) -> dict[str, Any] | None:
    """One customer (CUSTOMER_COLUMNS), or None when the id is unknown."""
    with store.begin() as conn:
        row = conn.execute(select(*[customers.c[c] for c in CUSTOMER_COLUMNS])
                           .where(customers.c.customer_id == customer_id)).first()
    return None if row is None else {**row._asdict(), "active": bool(row.active)}


def customer_positions(store: Store, customer_id: str) -> list[dict[str, Any]]:
    """The customer's invoices in the export, by due date, each with what it owes now: its stored position
    (portal/balances/position.py): `open`, `disputed`, `pending` (minor units) and `status`."""
    query = (select(invoices.c.invoice_id, invoices.c.number, invoices.c.due_date, invoices.c.amount,
                    invoices.c.currency, _POS.open_amount, _POS.disputed_amount, _POS.pending_amount, _POS.status)
             .select_from(invoices.join(invoice_positions, _POS.invoice_id == invoices.c.invoice_id))
             .where(invoices.c.customer_id == customer_id, invoices.c.is_open)
             .order_by(invoices.c.due_date, invoices.c.invoice_id))
    with store.begin() as conn:
        return [{"invoice_id": r.invoice_id, "number": r.number, "due_date": r.due_date, "amount": int(r.amount),
                 "currency": r.currency, "open": int(r.open_amount), "disputed": int(r.disputed_amount),
                 "pending": int(r.pending_amount), "status": r.status} for r in conn.execute(query)]


def _timeline_query(customer_id: str, invoice_id: str | None = None) -> Select:
    # The invoice number when the event names an invoice of this customer ("" for account-level events).
    query = (select(events.c.event_id, events.c.occurred_at, events.c.kind, events.c.invoice_id,
                   func.coalesce(invoices.c.number, "").label("number"), events.c.contact_id, events.c.document_id,
                   events.c.ip, events.c.user_agent, events.c.detail)
            .select_from(events.outerjoin(invoices, and_(invoices.c.invoice_id == events.c.invoice_id,
                                                         invoices.c.customer_id == events.c.customer_id)))
            .where(events.c.customer_id == customer_id)
            .order_by(events.c.occurred_at.desc(), events.c.event_id.desc()))
    return query if invoice_id is None else query.where(events.c.invoice_id == invoice_id)


def customer_timeline(store: Store, customer_id: str, *, page: int = 1, per_page: int = 100,
                      invoice_id: str | None = None) -> tuple[dict[str, Any] | None, Page]:
    """The customer (None when unknown) and every event recorded for it, newest first (keys: TIMELINE_COLUMNS).
    Kinds: email_sent, link_opened, page_viewed (invoice_id "" = account or statement page), document_viewed,
    payment_<status> (detail: attempt id), dispute_opened / dispute_under_review / dispute_resolved (detail:
    reference), question_asked, unsubscribed. `invoice_id`: only the events naming that invoice (who
    received, fetched, viewed and downloaded it, and when)."""
    _check_paging(page, per_page)
    query = _timeline_query(customer_id, invoice_id)
    found = customer(store, customer_id)
    with store.begin() as conn:
        counted = select(func.count()).select_from(events).where(events.c.customer_id == customer_id)
        if invoice_id is not None:
            counted = counted.where(events.c.invoice_id == invoice_id)
        total = conn.execute(counted).scalar_one()
        rows = conn.execute(query.limit(per_page).offset((page - 1) * per_page)).all()
    return found, Page([r._asdict() for r in rows], int(total), page, per_page, "occurred_at", True)


def timeline_csv(store: Store, customer_id: str, invoice_id: str | None = None) -> Iterator[str]:
    """Every event of the customer (or of one of its invoices), newest first, as CSV (TIMELINE_COLUMNS)."""
    def cells(r: Any) -> list[Any]:
        row = r._asdict()
        row["occurred_at"] = reports.iso_utc(row["occurred_at"])
        return [row[c] for c in TIMELINE_COLUMNS]

    return _stream(store, _timeline_query(customer_id, invoice_id), TIMELINE_COLUMNS, cells)


# --- streaming CSV -------------------------------------------------------------------------------------------


def _stream(store: Store, query: Select, header: Sequence[str], cells: Callable[[Any], list[Any]]
            ) -> Iterator[str]:
    def rows(_conn: Connection, part: Sequence[Any]) -> Iterable[list[Any]]:
        return (cells(r) for r in part)

    return _stream_parts(store, query, header, rows)


def _stream_parts(store: Store, query: Select, header: Sequence[str],
                  rows: Callable[[Connection, Sequence[Any]], Iterable[list[Any]]]) -> Iterator[str]:
    """CSV chunks from a server-side cursor, CHUNK_ROWS rows at a time: memory stays flat at any size. The
    query runs when the first chunk is asked for (a streamed response's body), in its own transaction."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    cell = reports.csv_cell
    writer.writerow(header)
    yield buffer.getvalue()
    with store.begin() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(query)
        for part in result.partitions(CHUNK_ROWS):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows([cell(v) for v in line] for line in rows(conn, part))
            yield buffer.getvalue()
