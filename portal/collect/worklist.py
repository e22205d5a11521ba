"""Today's worklist: per collector (or for the whole team), the customers to act on and why, most urgent first.

Priority (REASONS order; within a reason, the larger amount first, then the customer's name):
1. promise broken: a promise judged broken, or a plan's instalment judged missed, in the last BROKEN_DAYS days;
2. promise due today: an open promise whose day is today;
3. dispute or question unanswered: a dispute nobody has reviewed yet, a question nobody answered;
4. reminder returned undeliverable: an invoice email or reminder bounced (portal/store/mail.py, `mail_bounces`)
   in the last BROKEN_DAYS days, to an address still on file: until someone finds the right address, every
   later reminder bounces too, and reason 5 may be its consequence rather than the customer's silence;
5. large amount overdue, not viewed by a person: an invoice past due owing at least `worklist_large_amount`
   (its `due` by the balances rule's stored positions) with no `page_viewed` for it;
6. hold ended: a hold whose last day passed in the last BROKEN_DAYS days (not released by hand);
7. due soon on a big account: an invoice due within `worklist_due_soon_days` of a customer owing at least
   `worklist_big_account` in that currency.
A customer on hold today shows only for reasons 1-3 (what the customer did still needs an answer).

An item is **done** once someone logs a touch (call, email, note, promise, answer) on the customer after the
item's reason arose (for reasons that arise each day, today; for a bounce, the latest bounce): done items move
to the "done today" list. An item **snoozed** for a customer and reason stays off the list through the day
chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.engine import Connection

from portal.balances.rule import ASKABLE
from portal.collect.access import Actor, CollectRefused, require_worker
from portal.collect.plans import judge_plans, missed_instalments
from portal.collect.promises import settle_promises
from portal.core.config import Settings
from portal.store import disputes as disputestore
from portal.store.collect import (
    collector_assignments,
    collector_of,
    holds,
    promises,
    question_answers,
    touches,
    with_assignments,
    worklist_snoozes,
)
from portal.store.database import Store
from portal.store.mail import mail_bounces
from portal.store.plans import payment_plans
from portal.store.positions import invoice_positions
from portal.store.tables import contacts, customers, events

REASONS = {
    "promise_broken": "Promise broken",
    "promise_due_today": "Promise due today",
    "unanswered": "Dispute or question unanswered",
    "undeliverable": "Reminder returned undeliverable",
    "large_unviewed": "Large amount overdue, not viewed by a person",
    "hold_ended": "Hold ended",
    "due_soon_big": "Due soon on a big account",
}
URGENT = ("promise_broken", "promise_due_today", "unanswered")  # shown even for a customer on hold
BROKEN_DAYS = 14
BOUNCED_KINDS = ("invoices", "reminder")  # the messages that chase: a bounced answer or fresh link is no reason
STAFF_TOUCHES = ("call", "email", "note", "promise", "answer")
MAX_SNOOZE_DAYS = 90
_POS = invoice_positions.c


@dataclass
class Item:
    customer_id: str
    name: str
    collector: str
    reason: str
    since: datetime  # when the reason arose: a touch after it makes the item done
    amount: int = 0
    currency: str = ""
    detail: str = ""
    invoices: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return REASONS[self.reason]


@dataclass
class Worklist:
    collector: str  # "" for the team
    todo: list[Item]
    done: list[Item]
    snoozed: int


def _scope(collector: str, *columns: Any) -> Any:
    query = (select(*(columns or (customers.c.customer_id, customers.c.name, collector_of().label("collector"))))
             .select_from(with_assignments(customers)).where(customers.c.active))
    return query.where(collector_of() == collector.lower()) if collector else query


def _scope_ids(collector: str, not_held_on: date | None = None) -> Any:
    """The ids of `_scope` as a subquery, for the reasons' queries: a list of a portfolio's 2,500 ids (the team's
    10,000) sent as parameters cost more to compile and send than the queries took to answer (bench/workbench.py).
    `not_held_on`: leave out customers on hold that day."""
    query = _scope(collector, customers.c.customer_id)
    if not_held_on is not None:
        query = query.where(~exists().where(holds.c.customer_id == customers.c.customer_id,
                                            holds.c.released_at.is_(None), holds.c.until >= not_held_on))
    return query


def build_worklist(store: Store, settings: Settings, collector: str, now: datetime | None = None) -> Worklist:
    """The worklist of `collector` (a staff email; "" for the whole team) today."""
    now = now or datetime.now(UTC)
    today = now.date()
    start = datetime.combine(today, time(), UTC)
    with store.begin() as conn:
        scope = {r.customer_id: r for r in conn.execute(_scope(collector))}
    settle_promises(store, settings, now, None if not collector else _scope_ids(collector))
    judge_plans(store, settings, now, None if not collector else _scope_ids(collector))
    items: list[Item] = []
    with store.begin() as conn:
        if not scope:
            return Worklist(collector, [], [], 0)
        ids, calm = _scope_ids(collector), _scope_ids(collector, not_held_on=today)

        def add(customer_id: str, reason: str, since: datetime, **kw: Any) -> None:
            c = scope.get(customer_id)
            if c is None:  # imported (or reassigned) since the scope was read: on the next worklist
                return
            items.append(Item(customer_id, c.name, c.collector, reason, since, **kw))

        for r in conn.execute(select(promises).where(
                promises.c.customer_id.in_(ids), promises.c.status == "broken",
                promises.c.settled_at >= now - timedelta(days=BROKEN_DAYS))):
            add(r.customer_id, "promise_broken", r.settled_at, amount=r.amount, currency=r.currency,
                detail=f"promised by {r.promised_for.isoformat()}")
        for m in missed_instalments(conn, ids, now - timedelta(days=BROKEN_DAYS)):  # a plan's broken promises
            add(m["customer_id"], "promise_broken", m["missed_at"], amount=m["amount"], currency=m["currency"],
                detail=f"instalment {m['seq']} of {m['n']} missed (due {m['due_on'].isoformat()})")
        for r in conn.execute(select(promises).where(
                promises.c.customer_id.in_(ids), promises.c.status == "open", promises.c.promised_for == today)):
            add(r.customer_id, "promise_due_today", start, amount=r.amount, currency=r.currency,
                detail=f"promised by {r.promised_for.isoformat()}")
        _unanswered(conn, ids, add)
        _undeliverable(conn, calm, now, add)
        _overdue_unviewed(conn, settings, calm, today, start, add)
        for r in conn.execute(select(holds).where(
                holds.c.customer_id.in_(calm), holds.c.released_at.is_(None), holds.c.until < today,
                holds.c.until >= today - timedelta(days=BROKEN_DAYS))):
            add(r.customer_id, "hold_ended", datetime.combine(r.until + timedelta(days=1), time(), UTC),
                detail=f"on hold until {r.until.isoformat()}: {r.reason}")
        _due_soon_big(conn, settings, calm, today, start, add)
        # Only touches after the oldest item's reason arose can mark an item done: the rest need not be read.
        oldest = min((i.since for i in items), default=None)
        last_touch = {} if oldest is None else dict(conn.execute(
            select(touches.c.customer_id, func.max(touches.c.occurred_at)).where(
                touches.c.customer_id.in_(ids), touches.c.kind.in_(STAFF_TOUCHES), touches.c.occurred_at >= oldest)
            .group_by(touches.c.customer_id)).all())
        snoozes = {(r.customer_id, r.reason) for r in conn.execute(select(worklist_snoozes).where(
            worklist_snoozes.c.customer_id.in_(ids), worklist_snoozes.c.until >= today))}
    order = {reason: n for n, reason in enumerate(REASONS)}
    items.sort(key=lambda i: (order[i.reason], -i.amount, i.name, i.customer_id))
    todo, done, snoozed = [], [], 0
    for item in items:
        touched = last_touch.get(item.customer_id)
        if touched is not None and touched.tzinfo is None:
            touched = touched.replace(tzinfo=UTC)
        if touched is not None and touched >= item.since:
            done.append(item)
        elif (item.customer_id, item.reason) in snoozes:
            snoozed += 1
        else:
            todo.append(item)
    return Worklist(collector, todo, done, snoozed)


def _unanswered(conn: Connection, ids: Any, add: Any) -> None:
    d = disputestore.disputes
    for r in conn.execute(select(d.c.customer_id, d.c.dispute_id, d.c.amount, d.c.currency, d.c.created_at)
                          .where(d.c.customer_id.in_(ids), d.c.status == "open")):
        add(r.customer_id, "unanswered", r.created_at, amount=r.amount, currency=r.currency,
            detail=f"dispute D-{r.dispute_id}")
    q = disputestore.questions
    for r in conn.execute(select(q.c.customer_id, q.c.question_id, q.c.created_at).where(
            q.c.customer_id.in_(ids),
            ~exists().where(question_answers.c.question_id == q.c.question_id))):
        add(r.customer_id, "unanswered", r.created_at, detail=f"question Q-{r.question_id}")


def _undeliverable(conn: Connection, ids: Any, now: datetime, add: Any) -> None:
    """One item per customer whose invoice emails or reminders bounced lately, naming each address. A bounced
    address no longer on file for the customer is no reason: the export already corrected it."""
    b = mail_bounces.c
    still_on_file = exists().where(contacts.c.customer_id == b.customer_id,
                                   func.lower(contacts.c.email) == b.recipient)
    found: dict[str, list[Any]] = {}
    for r in conn.execute(select(b.customer_id, b.recipient, b.kind, b.status, b.bounced_at).where(
            b.customer_id.in_(ids), b.kind.in_(BOUNCED_KINDS), b.bounced_at >= now - timedelta(days=BROKEN_DAYS),
            still_on_file).order_by(b.customer_id, b.bounced_at.desc())):
        found.setdefault(r.customer_id, []).append(r)
    for customer_id, rows in found.items():
        latest: dict[str, Any] = {}
        for r in rows:  # newest first: the first row per address is its latest bounce
            latest.setdefault(r.recipient, r)
        words = "; ".join(f"{'reminder' if r.kind == 'reminder' else 'invoice email'} to {address} bounced "
                          f"{r.bounced_at.date().isoformat()}{f' ({r.status})' if r.status else ''}"
                          for address, r in latest.items())
        add(customer_id, "undeliverable", rows[0].bounced_at, detail=words)


def _not_planned() -> Any:
    """An invoice on an open payment plan is chased by its instalments (a missed one is "promise broken"), not as a
    large overdue amount or a due-soon invoice: the collector already agreed how it is paid."""
    return ~exists().where(payment_plans.c.invoice_id == _POS.invoice_id, payment_plans.c.status == "open")


def _overdue_unviewed_query(settings: Settings, ids: Any, today: date) -> Any:
    viewed = exists().where(events.c.customer_id == _POS.customer_id, events.c.invoice_id == _POS.invoice_id,
                            events.c.kind == "page_viewed")
    due = _POS.open_amount - _POS.disputed_amount
    return (select(_POS.customer_id, _POS.currency, func.sum(due).label("amount"),
                   func.count().label("n"), func.min(_POS.due_date).label("oldest"))
            .where(_POS.customer_id.in_(ids), _POS.due_date < today, due >= settings.worklist_large_amount,
                   _POS.status.in_(sorted(ASKABLE)), ~viewed, _not_planned())
            .group_by(_POS.customer_id, _POS.currency))


def _overdue_unviewed(conn: Connection, settings: Settings, ids: Any, today: date, start: datetime,
                      add: Any) -> None:
    for r in conn.execute(_overdue_unviewed_query(settings, ids, today)):
        add(r.customer_id, "large_unviewed", start, amount=int(r.amount), currency=r.currency,
            detail=f"{r.n} invoice(s), oldest due {r.oldest.isoformat()}")


def _due_soon_big(conn: Connection, settings: Settings, ids: Any, today: date, start: datetime, add: Any) -> None:
    """Two small steps rather than one join: the invoices due within the days (a few hundred), then what just
    their customers owe per currency. Grouping every position of the scope first to find the big accounts took
    seconds at 100,000 invoices (bench/workbench.py)."""
    due = _POS.open_amount - _POS.disputed_amount
    soon = conn.execute(
        select(_POS.customer_id, _POS.currency, func.sum(due).label("amount"), func.count().label("n"),
               func.min(_POS.due_date).label("first"))
        .where(_POS.customer_id.in_(ids), _POS.due_date >= today,
               _POS.due_date <= today + timedelta(days=settings.worklist_due_soon_days),
               _POS.status.in_(sorted(ASKABLE)), due > 0, _not_planned())
        .group_by(_POS.customer_id, _POS.currency)).all()
    if not soon:
        return
    owing = {(r.customer_id, r.currency): int(r.total) for r in conn.execute(
        select(_POS.customer_id, _POS.currency, func.sum(_POS.open_amount).label("total"))
        .where(_POS.customer_id.in_(sorted({r.customer_id for r in soon})))
        .group_by(_POS.customer_id, _POS.currency))}
    for r in soon:
        if owing.get((r.customer_id, r.currency), 0) >= settings.worklist_big_account:
            add(r.customer_id, "due_soon_big", start, amount=int(r.amount), currency=r.currency,
                detail=f"{r.n} invoice(s), first due {r.first.isoformat()}")


def snooze(store: Store, actor: Actor, customer_id: str, reason: str, until: date, now: datetime | None = None) -> None:
    """Keep the customer's item for `reason` off the worklist through `until` (at most MAX_SNOOZE_DAYS ahead)."""
    require_worker(actor)
    now = now or datetime.now(UTC)
    if reason not in REASONS:
        raise CollectRefused(f"reason {reason!r}: use one of {', '.join(REASONS)}")
    if not now.date() <= until <= now.date() + timedelta(days=MAX_SNOOZE_DAYS):
        raise CollectRefused(f"snooze until a day from today to {MAX_SNOOZE_DAYS} days ahead, not {until.isoformat()}")
    with store.begin() as conn:
        if conn.execute(select(customers.c.customer_id).where(customers.c.customer_id == customer_id)).first() is None:
            raise CollectRefused(f"customer {customer_id!r}: no such customer", 404)
        key = (worklist_snoozes.c.customer_id == customer_id) & (worklist_snoozes.c.reason == reason)
        values = {"until": until, "snoozed_by": actor.email, "snoozed_at": now}
        if conn.execute(update(worklist_snoozes).where(key).values(**values)).rowcount == 0:
            conn.execute(insert(worklist_snoozes).values(customer_id=customer_id, reason=reason, **values))


def reassign(store: Store, actor: Actor, customer_id: str, collector: str, now: datetime | None = None) -> None:
    """Make `collector` the customer's collector (managers and admins only); it wins over the export's column."""
    if not actor.oversees:
        raise CollectRefused(f"{actor.email} is a {actor.role}: only managers and admins reassign customers", 403)
    collector = collector.strip().lower()
    if not collector or "@" not in collector or len(collector) > 320:
        raise CollectRefused(f"collector {collector[:80]!r}: give the collector's email address")
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        if conn.execute(select(customers.c.customer_id).where(customers.c.customer_id == customer_id)).first() is None:
            raise CollectRefused(f"customer {customer_id!r}: no such customer", 404)
        key = collector_assignments.c.customer_id == customer_id
        values = {"collector": collector, "assigned_by": actor.email, "assigned_at": now}
        if conn.execute(update(collector_assignments).where(key).values(**values)).rowcount == 0:
            conn.execute(insert(collector_assignments).values(customer_id=customer_id, **values))
        conn.execute(insert(touches).values(customer_id=customer_id, kind="reassigned", outcome="",
                                            body=f"to {collector}", collector=collector, created_by=actor.email,
                                            contact_id="", occurred_at=now))
