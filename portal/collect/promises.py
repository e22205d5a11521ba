"""Promises to pay: "we will pay $X by DATE" for some invoices, made by a collector from a call or by the customer on
their page, then judged kept or broken from what the balances rule says arrived (docs/collect.md).

Guarantees:
- a promise names only invoices of its own customer that may be asked for money now (their `due`, by THE rule of
  portal/balances, is above zero), all in one currency; its amount is more than zero and at most what they owe;
- a customer's promise stays within the team's limits (`promise_max_days`, `promise_min_percent`) and cannot
  replace an open promise; a collector's may, and the one it replaces is kept on the timeline as cancelled;
- while a promise is open and its day has not passed, `portal remind` leaves its invoices alone
  (portal.store.collect.promised_invoices);
- money "arrived" for a promise = what its invoices still owed when promised (open + pending) less what they
  still owe now, never below zero per invoice: a bank payment still settling has not arrived, an invoice the
  ERP closed has. A promise is kept as soon as that reaches its amount, broken once its day plus
  `promise_grace_days` has passed without it. Each outcome is recorded once (the open row is locked), with a
  touch on the customer's timeline counted for the promise's collector.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Connection

from portal.balances import position
from portal.collect.access import Actor, CollectRefused
from portal.collect.touches import checked_touch, customer_exists, own_invoices, write_touch
from portal.core.config import Settings
from portal.core.i18n import N_, translations_for
from portal.core.money import AmountError, format_money, parse_amount, parse_typed_amount
from portal.store.collect import insert_touch, of_customers, promise_invoices, promises
from portal.store.database import Store
from portal.store.tables import customers, invoices

COLLECTOR_MAX_DAYS = 366


@dataclass(frozen=True)
class Offer:
    """A promise as typed: the invoices, the amount in major units ("1250.00"), the day (YYYY-MM-DD)."""

    invoice_ids: tuple[str, ...]
    amount: str
    day: str


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CollectRefused(N_('Promised by: "%(text)s" is not a date (YYYY-MM-DD)'), text=text.strip()[:40]) from None


def _record(conn: Connection, customer_id: str, offer: Offer, *, source: str, made_by: str, collector: str,
            limits: Settings | None, now: datetime, locale: str | None = None) -> tuple[int, str]:
    """Check `offer` against the store and write it; (promise id, "USD 10.00 by 2026-12-10") for the timeline.
    `limits`: the customer's limits (None for a collector's promise). `locale`: the customer's, for a promise made
    on their page: the amount is read as they type numbers (parse_typed_amount, as the pay form) and the refusals
    name amounts in their format and words (CollectRefused.text)."""
    if not customer_exists(conn, customer_id):
        raise CollectRefused(f"customer {customer_id!r}: no such customer", 404)
    ids = own_invoices(conn, customer_id, offer.invoice_ids)
    if not ids:
        raise CollectRefused(N_("choose the invoices the promise is for"))
    named = conn.execute(select(invoices.c.invoice_id, invoices.c.number, invoices.c.currency)
                         .where(invoices.c.invoice_id.in_(ids))).all()
    numbers = {r.invoice_id: r.number for r in named}
    currencies = {r.currency for r in named}
    if len(currencies) != 1:
        raise CollectRefused(N_("a promise is for invoices of one currency; make one promise per currency"))
    currency = currencies.pop()
    found = position.of_invoices(conn, ids)
    for invoice_id in ids:
        if found[invoice_id].due <= 0:
            status = found[invoice_id].status_text
            raise CollectRefused(N_("invoice %(number)s owes nothing that can be promised (%(status)s)"),
                                 number=numbers[invoice_id],
                                 status=status.lower() if locale is None else translations_for(
                                     locale, limits.default_locale if limits else None).gettext(status))
    due = sum(found[i].due for i in ids)
    try:
        if locale is None:
            amount = parse_amount(offer.amount.replace(",", "")[:40], currency)
        else:
            amount = parse_typed_amount(offer.amount[:40], currency, locale)
    except AmountError as exc:
        if locale is None:
            raise CollectRefused(f"Amount: {exc}") from None
        raise CollectRefused(N_('Amount: "%(amount)s" is not a number'), amount=offer.amount.strip()[:40]) from None
    shown = format_money(due, currency, locale or "en_US")
    if amount <= 0 or amount > due:
        raise CollectRefused(N_("the amount must be more than zero and at most %(due)s, what these invoices owe"),
                             due=shown)
    day, today = _day(offer.day), now.date()
    if day < today:
        raise CollectRefused(N_("the promised day %(day)s has passed"), day=day.isoformat())
    latest = today + timedelta(days=limits.promise_max_days if limits else COLLECTOR_MAX_DAYS)
    if day > latest:
        raise CollectRefused(N_("the promised day must be %(day)s at the latest"), day=latest.isoformat())
    if limits and amount * 100 < due * limits.promise_min_percent:
        raise CollectRefused(N_("a promise made online covers at least %(percent)d%% of %(due)s"),
                             percent=limits.promise_min_percent, due=shown)
    # Locked (PostgreSQL refuses FOR UPDATE with DISTINCT: the set is made here) so two replacements of one
    # promise at once cancel it once.
    earlier = sorted(set(conn.execute(
        select(promises.c.promise_id).select_from(promises.join(
            promise_invoices, promise_invoices.c.promise_id == promises.c.promise_id))
        .where(promises.c.status == "open", promise_invoices.c.invoice_id.in_(ids))
        .with_for_update(of=promises)).scalars()))
    if earlier and limits:
        raise CollectRefused(N_("these invoices already have a promise to pay; please contact us to change it"))
    for promise_id in earlier:
        _settle(conn, promise_id, customer_id, "cancelled", None, collector, now)
    promise_id = conn.execute(insert(promises).values(
        customer_id=customer_id, amount=amount, currency=currency, promised_for=day, source=source,
        made_by=made_by, collector=collector, status="open", created_at=now, settled_at=None, arrived=0)
        .returning(promises.c.promise_id)).scalar_one()
    conn.execute(insert(promise_invoices), [
        {"promise_id": promise_id, "invoice_id": i, "unsettled_at_promise": found[i].open + found[i].pending}
        for i in ids])
    return int(promise_id), f"{format_money(amount, currency, 'en_US')} by {day.isoformat()}"


def log_touch_with_promise(store: Store, actor: Actor, customer_id: str, kind: str, offer: Offer, *,
                           outcome: str = "", body: str = "", now: datetime | None = None) -> int:
    """A collector's touch (usually a call) and the promise it brought, in one transaction; returns the promise
    id. Nothing is written when either is refused."""
    kind, outcome, body = checked_touch(actor, kind, outcome, body)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        write_touch(conn, actor, customer_id, kind, outcome, body, offer.invoice_ids, now)
        promise_id, words = _record(conn, customer_id, offer, source="collector", made_by=actor.email,
                                    collector=actor.email, limits=None, now=now)
        insert_touch(conn, {"customer_id": customer_id, "kind": "promise", "outcome": "",
                            "body": f"{words}, taken by {actor.email}", "collector": actor.email,
                            "created_by": actor.email, "contact_id": "", "occurred_at": now}, offer.invoice_ids)
        return promise_id


def promise_from_customer(store: Store, settings: Settings, customer_id: str, offer: Offer,
                          now: datetime | None = None) -> int:
    """A promise the customer made on their page (the customer id comes from the page token, never the form);
    counted for the customer's collector, on the timeline for the team."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        row = conn.execute(select(customers.c.collector, customers.c.locale)
                           .where(customers.c.customer_id == customer_id)).first()
        collector, locale = (row.collector or "", row.locale) if row else ("", "")
        locale = locale or settings.default_locale
        promise_id, words = _record(conn, customer_id, offer, source="customer", made_by="", collector=collector,
                                    limits=settings, now=now, locale=locale)
        insert_touch(conn, {"customer_id": customer_id, "kind": "promise", "outcome": "",
                            "body": f"{words}, made by the customer on their page", "collector": collector,
                            "created_by": "", "contact_id": "", "occurred_at": now}, offer.invoice_ids)
        return promise_id


def _settle(conn: Connection, promise_id: int, customer_id: str, status: str, arrived: int | None, collector: str,
            now: datetime) -> None:
    values: dict[str, Any] = {"status": status, "settled_at": now}
    if arrived is not None:
        values["arrived"] = arrived
    conn.execute(update(promises).where(promises.c.promise_id == promise_id).values(**values))
    ids = conn.execute(select(promise_invoices.c.invoice_id).where(promise_invoices.c.promise_id == promise_id)
                       ).scalars().all()
    insert_touch(conn, {"customer_id": customer_id, "kind": f"promise_{status}", "outcome": "",
                        "body": f"promise #{promise_id}", "collector": collector, "created_by": "", "contact_id": "",
                        "occurred_at": now}, ids)


def settle_promises(store: Store, settings: Settings, now: datetime | None = None,
                    customer_ids: Iterable[str] | Select | None = None) -> dict[int, str]:
    """Judge the open promises (of some customers: ids or a subquery of them; or all): promise id -> "kept" |
    "broken" for those decided now. Safe to run from several places at once: the open rows that need a change are
    locked and judged again, and a decided one is not open.

    The worklist runs this on every request: a first read without locks finds the promises that need a change
    (decided, or money arrived since last judged), usually none, so that a request writes nothing then. Locking
    every open promise (2,500 for the team at 10,000 customers) wrote to each row and cost a fifth of the page."""
    now = now or datetime.now(UTC)
    decided: dict[int, str] = {}
    with store.begin() as conn:
        query = select(promises).where(promises.c.status == "open").order_by(promises.c.promise_id)
        if customer_ids is not None:
            query = query.where(of_customers(promises.c.customer_id, customer_ids))
        changing = [r.promise_id for r, (status, got) in _judged(conn, settings, conn.execute(query).all(), now)
                    if status or got != r.arrived]
        if not changing:
            return decided
        locked = conn.execute(select(promises).where(promises.c.promise_id.in_(changing), promises.c.status == "open")
                              .order_by(promises.c.promise_id).with_for_update()).all()
        for r, (status, got) in _judged(conn, settings, locked, now):
            if status is None:
                if got != r.arrived:
                    conn.execute(update(promises).where(promises.c.promise_id == r.promise_id).values(arrived=got))
                continue
            decided[r.promise_id] = status
            _settle(conn, r.promise_id, r.customer_id, status, got, r.collector, now)
    return decided


def _judged(conn: Connection, settings: Settings, rows: list[Any], now: datetime
            ) -> list[tuple[Any, tuple[str | None, int]]]:
    """Each open promise with its verdict now ("kept", "broken" or None: not yet) and the money arrived for it
    (what its invoices owed when promised less what they still owe, open or on its way, by the balances rule)."""
    if not rows:
        return []
    grace = timedelta(days=settings.promise_grace_days)
    parts = conn.execute(select(promise_invoices).where(
        promise_invoices.c.promise_id.in_([r.promise_id for r in rows]))).all()
    found = position.of_invoices(conn, {p.invoice_id for p in parts})
    arrived: dict[int, int] = {}
    for p in parts:
        now_owed = found[p.invoice_id].open + found[p.invoice_id].pending if p.invoice_id in found else 0
        arrived[p.promise_id] = arrived.get(p.promise_id, 0) + max(0, p.unsettled_at_promise - now_owed)
    judged = []
    for r in rows:
        got = arrived.get(r.promise_id, 0)
        status = "kept" if got >= r.amount else "broken" if now.date() > r.promised_for + grace else None
        judged.append((r, (status, got)))
    return judged


def customer_promises(store: Store, customer_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The customer's promises, newest first, each with its invoice numbers."""
    with store.begin() as conn:
        rows = [r._asdict() for r in conn.execute(
            select(promises).where(promises.c.customer_id == customer_id)
            .order_by(promises.c.created_at.desc(), promises.c.promise_id.desc()).limit(limit))]
        numbers: dict[int, list[str]] = {}
        if rows:
            for promise_id, number in conn.execute(
                    select(promise_invoices.c.promise_id, invoices.c.number)
                    .select_from(promise_invoices.join(invoices,
                                                       invoices.c.invoice_id == promise_invoices.c.invoice_id))
                    .where(promise_invoices.c.promise_id.in_([r["promise_id"] for r in rows]))
                    .order_by(invoices.c.number)):
                numbers.setdefault(promise_id, []).append(number)
    for row in rows:
        row["invoices"] = numbers.get(row["promise_id"], [])
    return rows
