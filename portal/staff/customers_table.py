"""The staff dashboard's customers: search by id or name, one customer with what each of its invoices owes now,
and its timeline (every event recorded for it, newest first; paginated as portal/staff/paging.py says) with
the timeline's CSV export.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.sql import Select

from portal.core.errors import NotFound
from portal.staff.csvcells import iso_utc
from portal.staff.exports import stream_rows
from portal.staff.paging import Page, check_paging, matches_customer
from portal.store.database import Store
from portal.store.positions import invoice_positions
from portal.store.tables import customers, events, invoices

_POS = invoice_positions.c


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
    matches = or_(matches_customer(q), func.lower(customers.c.customer_id).startswith(q.lower(), autoescape=True))
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


def customer_positions(store: Store, customer_id: str, invoice_id: str | None = None) -> list[dict[str, Any]]:
    """The customer's invoices in the export (or only `invoice_id`, when it is one of them), by due date, each
    with what it owes now: its stored position (portal/balances/position.py): `open`, `disputed`, `pending`
    (minor units) and `status`."""
    query = (select(invoices.c.invoice_id, invoices.c.number, invoices.c.due_date, invoices.c.amount,
                    invoices.c.currency, _POS.open_amount, _POS.disputed_amount, _POS.pending_amount, _POS.status)
             .select_from(invoices.join(invoice_positions, _POS.invoice_id == invoices.c.invoice_id))
             .where(invoices.c.customer_id == customer_id, invoices.c.is_open)
             .order_by(invoices.c.due_date, invoices.c.invoice_id))
    if invoice_id is not None:
        query = query.where(invoices.c.invoice_id == invoice_id)
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
    check_paging(page, per_page)
    query = _timeline_query(customer_id, invoice_id)
    found = customer(store, customer_id)
    with store.begin() as conn:
        counted = select(func.count()).select_from(events).where(events.c.customer_id == customer_id)
        if invoice_id is not None:
            counted = counted.where(events.c.invoice_id == invoice_id)
        total = conn.execute(counted).scalar_one()
        rows = conn.execute(query.limit(per_page).offset((page - 1) * per_page)).all()
    return found, Page([r._asdict() for r in rows], int(total), page, per_page, "occurred_at", True)


@dataclass
class CustomerPage:
    """What the staff customer page shows (`customer_page`)."""

    customer: dict[str, Any]  # CUSTOMER_COLUMNS
    timeline: Page  # TIMELINE_COLUMNS, newest first
    positions: list[dict[str, Any]]  # customer_positions


def customer_page(store: Store, customer_id: str, *, page: int = 1, per_page: int = 100,
                  invoice_id: str | None = None) -> CustomerPage | None:
    """The customer, one page of its timeline, and what its open invoices owe now; with `invoice_id`, only the
    events naming that invoice and only that invoice's position. None when the customer is unknown."""
    found, timeline = customer_timeline(store, customer_id, page=page, per_page=per_page, invoice_id=invoice_id)
    if found is None:
        return None
    return CustomerPage(found, timeline, customer_positions(store, customer_id, invoice_id))


def timeline_csv(store: Store, customer_id: str, invoice_id: str | None = None) -> Iterator[str]:
    """Every event of the customer (or of one of its invoices), newest first, as CSV (TIMELINE_COLUMNS).
    Raises NotFound, before anything is streamed, when the customer is unknown."""
    if customer(store, customer_id) is None:
        raise NotFound(f"customer {customer_id!r}: no such customer")

    def cells(r: Any) -> list[Any]:
        row = r._asdict()
        row["occurred_at"] = iso_utc(row["occurred_at"])
        return [row[c] for c in TIMELINE_COLUMNS]

    return stream_rows(store, _timeline_query(customer_id, invoice_id), TIMELINE_COLUMNS, cells)
