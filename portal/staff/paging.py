"""Pages of the staff dashboard's tables: the rules every table (receipts, payments, disputes, timelines) follows.

- A page is ONE query for its rows plus one COUNT (payments and disputes add one query for the whole page's
  allocations or invoices: never one per row).
- Sorting goes through a whitelist (name -> column): an unknown name raises ValueError (the view answers 400),
  so no text from a request ever becomes SQL. NULLs sort last both ways, and every order ends with the table's
  unique id, so pages are stable: put together, the pages are the whole list, each row once.
- Rows are plain dicts: money in integer minor units with its `currency`, times as aware UTC datetimes, dates
  as dates (templates format them). Nothing here imports Flask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from portal.store.database import Store
from portal.store.tables import customers

MAX_PER_PAGE = 500


@dataclass
class Page:
    """One page of a table, with what the view needs to link the others."""

    rows: list[dict[str, Any]]
    total: int  # rows matching the filters, on every page
    page: int  # 1-based
    per_page: int
    sort: str
    descending: bool

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def check_paging(page: int, per_page: int) -> None:
    """Refuse a page number below 1 and a page size outside 1..MAX_PER_PAGE (ValueError: the view answers 400)."""
    if page < 1:
        raise ValueError(f"page {page}: pages start at 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page {per_page}: between 1 and {MAX_PER_PAGE}")


def sort_order(sorts: dict[str, Any], sort: str, descending: bool, tiebreak: Any) -> list[Any]:
    """ORDER BY for a whitelisted sort; NULLs last both ways (SQLite and PostgreSQL disagree otherwise)."""
    if sort not in sorts:
        raise ValueError(f"unknown sort {sort!r}: one of {', '.join(sorted(sorts))}")
    column = sorts[sort]
    key = column.desc() if descending else column.asc()
    return [key.nulls_last(), tiebreak.desc() if descending else tiebreak.asc()]


def matches_customer(text: str) -> Any:
    """Customer id exactly, or a case-insensitive part of the customer's name."""
    return or_(customers.c.customer_id == text,
               func.lower(customers.c.name).contains(text.lower(), autoescape=True))


def fetch_page(store: Store, query: Callable[[], Select], sorts: dict[str, Any], tiebreak: Any, *, sort: str,
               descending: bool, page: int, per_page: int,
               rows: Callable[[Connection, Sequence[Any]], list[dict[str, Any]]]) -> Page:
    """One page of `query()` sorted by `sort` (from `sorts`, then `tiebreak`): the COUNT of every match, the page's
    rows, and `rows`' dicts of them (given the connection for the one query a page may add: the allocations or
    invoices of the whole page), in one transaction. The paging and the sort are checked before the query is
    made, and the query before anything runs."""
    check_paging(page, per_page)
    order = sort_order(sorts, sort, descending, tiebreak)
    matching = query()
    with store.begin() as conn:
        total = conn.execute(select(func.count()).select_from(matching.subquery())).scalar_one()
        found = conn.execute(matching.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
        made = rows(conn, found)
    return Page(made, int(total), page, per_page, sort, descending)
