"""Where invoices stand now, read from the store: each invoice's position by THE rule (portal/balances/rule.py),
and what the rule needs for some customers (their movements and dispute holds).

These compute from the sources (invoices, the journal, the disputes) on every call, so they are exact within the
caller's transaction: what a payment may take, what an email says an invoice owes, what a page shows.
SQL readers that cannot run the rule per row read the stored positions instead (portal/balances/stored.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from portal.balances.journal import entries
from portal.balances.rule import STATUS_PHRASE, Inputs, Position
from portal.core.i18n import translations_for
from portal.core.money import format_money
from portal.store import disputes as disputestore
from portal.store.tables import invoices, snapshots


def inputs(conn: Connection, customer_ids: Iterable[str] | None = None) -> Inputs:
    """What the rule needs for the customers named (every customer when None): their movements and dispute holds."""
    ids = None if customer_ids is None else sorted(set(customer_ids))
    return Inputs(entries(conn, customer_ids=ids), disputestore.disputed_amounts(conn, customer_ids=ids))


def latest_as_of(conn: Connection) -> datetime:
    """The newest export's as_of (the earliest time there is when nothing was imported: every movement is after)."""
    found = conn.execute(select(snapshots.c.as_of).order_by(snapshots.c.snapshot_id.desc()).limit(1)).scalar()
    return found or datetime.min.replace(tzinfo=UTC)


def of_invoices(conn: Connection, invoice_ids: Iterable[str] | None = None, customer_ids: Iterable[str] | None = None
                ) -> dict[str, Position]:
    """invoice id -> its position now, computed from the store (closed invoices too)."""
    inv = invoices.c
    query = select(inv.invoice_id, inv.amount, inv.balance, inv.is_open).order_by(inv.invoice_id)
    ids = None if invoice_ids is None else sorted(set(invoice_ids))
    if ids is not None:
        query = query.where(inv.invoice_id.in_(ids))
    if customer_ids is not None:
        query = query.where(inv.customer_id.in_(sorted(set(customer_ids))))
    rows = conn.execute(query).all()
    as_of = latest_as_of(conn)
    wanted = [r.invoice_id for r in rows]
    many = ids is None and customer_ids is None
    moves = entries(conn, invoice_ids=None if many else wanted, item_kind="invoice")
    held = disputestore.disputed_amounts(conn, invoice_ids=None if many else wanted)
    source = Inputs(moves, held)
    return {r.invoice_id: source.invoice(r.invoice_id, int(r.amount), int(r.balance), as_of, bool(r.is_open))
            for r in rows}


def standing(conn: Connection, named: Iterable[tuple[str, str, str]], locale: str = "en_US") -> tuple[str, ...]:
    """"INV-1: $40.00 open, partly paid" for each (invoice id, number, currency) named: what the payment and
    dispute emails say about where the invoices they name stand now, in the language of `locale`."""
    named = list(named)
    now = of_invoices(conn, [invoice_id for invoice_id, _, _ in named])
    t = translations_for(locale)
    return tuple(t.gettext("%(number)s: %(amount)s open, %(status)s")
                 % {"number": number, "amount": format_money(now[iid].open, currency, locale),
                    "status": t.gettext(STATUS_PHRASE[now[iid].status]) if now[iid].status in STATUS_PHRASE
                    else now[iid].status}
                 for iid, number, currency in named if iid in now)

