"""A collector's portfolio: the customers the export names them collector of, each with its current hold, and
the hold marks every staff list of customers shows (docs/collect.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from portal.collect.holds import current_holds
from portal.store.collect import collector_of, with_assignments
from portal.store.database import Store
from portal.store.tables import customers

MAX_LISTED = 500


def with_holds(store: Store, rows: list[dict[str, Any]], today: date | None = None) -> list[dict[str, Any]]:
    """`rows` (dicts with customer_id), each given `hold`: its current hold, or None."""
    found = current_holds(store, [r["customer_id"] for r in rows], today)
    return [{**r, "hold": found.get(r["customer_id"])} for r in rows]


def portfolio(store: Store, collector: str, today: date | None = None, limit: int = MAX_LISTED
              ) -> list[dict[str, Any]]:
    """The active customers whose collector is `collector` (a manager's reassignment, else the export's
    `collector` column, in any case: staff emails are stored lower case), by name, each with its hold; at most
    `limit` (the search finds the others)."""
    query = (select(customers.c.customer_id, customers.c.name, collector_of().label("collector"),
                    customers.c.group_name).select_from(with_assignments(customers))
             .where(collector_of() == collector.strip().lower(), customers.c.active)
             .order_by(customers.c.name, customers.c.customer_id).limit(limit))
    with store.begin() as conn:
        rows = [r._asdict() for r in conn.execute(query)]
    return with_holds(store, rows, today or datetime.now(UTC).date())
