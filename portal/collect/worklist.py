"""Today's worklist: per collector (or for the whole team), the customers to act on and why, most urgent first.

Priority (REASONS order; within a reason, the larger amount first, then the customer's name):
1. promise broken: a promise judged broken, or a plan's instalment judged missed, in the last BROKEN_DAYS days;
2. promise due today: an open promise whose day is today;
3. dispute or question unanswered: a dispute nobody has reviewed yet, a question nobody answered;
4. reminder returned undeliverable: an invoice email or reminder bounced (portal/store/mail.py, `mail_bounces`)
   in the last BROKEN_DAYS days, to an address still on file: until someone finds the right address, every
   later reminder bounces too, and reason 5 may be its consequence rather than the customer's silence;
5. large amount overdue, not viewed by a person: an invoice past due owing at least `worklist_large_amount`
   (its `due` by the balances rule's stored positions) with no `page_viewed` for it (`invoice_views`);
6. hold ended: a hold whose last day passed in the last BROKEN_DAYS days (not released by hand);
7. due soon on a big account: an invoice due within `worklist_due_soon_days` of a customer owing at least
   `worklist_big_account` in that currency.
A customer on hold today shows only for reasons 1-3 (what the customer did still needs an answer).

An item is **done** once someone logs a touch (call, email, note, promise, answer) on the customer after the
item's reason arose (for reasons that arise each day, today; for a bounce, the latest bounce): done items move
to the "done today" list. An item **snoozed** for a customer and reason stays off the list through the day
chosen.

The list comes in pages of PER_PAGE items to do, with the count of each reason on every page; the first
DONE_SHOWN items done today are listed, all are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    Text,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    type_coerce,
    union_all,
    update,
)
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
    last_staff_touches,
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
from portal.store.tables import UTCDateTime, contacts, customers, invoice_views

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
# What marks an item done: the trigger keeping `last_staff_touches` lists the same kinds (0013_worklist_facts).
STAFF_TOUCHES = ("call", "email", "note", "promise", "answer")
MAX_SNOOZE_DAYS = 90
PER_PAGE = 100  # items to do per page
DONE_SHOWN = 100  # items done today listed (all are counted)
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
    todo: list[Item]  # the page's items to do
    done: list[Item]  # the first DONE_SHOWN items done today
    snoozed: int
    counts: dict[str, int] = field(default_factory=dict)  # reason -> items to do, on every page
    done_total: int = 0
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def todo_total(self) -> int:
        return sum(self.counts.values())

    @property
    def total(self) -> int:  # for the staff pages' pager
        return self.todo_total

    @property
    def pages(self) -> int:
        return max(1, -(-self.todo_total // self.per_page))


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


def build_worklist(store: Store, settings: Settings, collector: str, now: datetime | None = None, page: int = 1,
                   per_page: int | None = None) -> Worklist:
    """The worklist of `collector` (a staff email; "" for the whole team) today: page `page` of the items to do,
    the first DONE_SHOWN done today, and the counts of every page.

    One query answers it (`_classified`): the items of every reason as one UNION ALL, each classified done,
    snoozed or to do, numbered in the documented order, and only the rows of the page (plus one per reason and
    state, which carries its count) leave the database. At 10,000 customers the team's list holds some 6,000
    items to do and as many done: reading them all into Python cost more than the 300 ms the page may take
    (bench/workbench.py)."""
    now = now or datetime.now(UTC)
    page, per_page = max(1, page), max(1, per_page or PER_PAGE)
    settle_promises(store, settings, now, None if not collector else _scope_ids(collector))
    judge_plans(store, settings, now, None if not collector else _scope_ids(collector))
    offset = (page - 1) * per_page
    counts: dict[int, dict[str, int]] = {DONE: {}, TODO: {}, SNOOZED: {}}
    todo: list[Item] = []
    done: list[Item] = []
    with store.begin() as conn:
        if conn.dialect.name == "postgresql":
            # The planner's cost of the query passes jit_above_cost, and compiling it took 190 ms of its 580
            # (bench/workbench.py, the team's list): JIT pays off on long analytic scans only.
            conn.exec_driver_sql("SET LOCAL jit = off")
            # A collector's portfolio is a filter on an expression (the reassignment or the export's column)
            # PostgreSQL has no statistics for: it expects 50 customers of 2,500 and probes the invoice views
            # 18,000 times in a nested loop rather than hashing them once.
            conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        for r in conn.execute(_classified(settings, collector, now, offset, per_page)):
            if r.customer_id is None:  # a count
                counts[r.state][r.reason] = int(r.n)
            else:
                (todo if r.state == TODO else done).append(_item(r))
        _bounce_details(conn, [i for i in todo + done if i.reason == "undeliverable"], now)
    return Worklist(collector, todo, done, sum(counts[SNOOZED].values()), counts=counts[TODO],
                    done_total=sum(counts[DONE].values()), page=page, per_page=per_page)


DONE, TODO, SNOOZED = 0, 1, 2  # an item's state, in the order an item is judged (a touch wins over a snooze)


def _part(reason: str, customer_id: Any, since: Any, *, amount: Any = 0, currency: Any = "", day: Any = None,
          n1: Any = None, n2: Any = None, text: Any = "") -> list[Any]:
    """One reason's columns for the UNION ALL: what `_item` needs to build the Item and its detail."""
    return [literal(reason, String).label("reason"), literal(list(REASONS).index(reason), Integer).label("rank"),
            customer_id.label("customer_id"), type_coerce(since, UTCDateTime).label("since"),
            type_coerce(amount, BigInteger).label("amount"), type_coerce(currency, String).label("currency"),
            type_coerce(day, Date).label("day"), type_coerce(n1, Integer).label("n1"),
            type_coerce(n2, Integer).label("n2"), type_coerce(text, Text).label("text")]


def _candidates(settings: Settings, collector: str, now: datetime) -> Any:
    """Every item of the list, done or not, as one UNION ALL (columns of `_part`)."""
    today = now.date()
    start = literal(datetime.combine(today, time(), UTC), UTCDateTime)
    ids, calm = _scope_ids(collector), _scope_ids(collector, not_held_on=today)
    p, d, q, h = promises.c, disputestore.disputes.c, disputestore.questions.c, holds.c
    missed = missed_instalments(ids, now - timedelta(days=BROKEN_DAYS)).subquery()
    due = _POS.open_amount - _POS.disputed_amount
    ended_days = [today - timedelta(days=n) for n in range(1, BROKEN_DAYS + 1)]
    # A hold's item arises when its last day is over. The day after `until` as a time, in SQL both databases
    # speak: the days a hold may have ended on within BROKEN_DAYS are few, so spell each out.
    hold_over = case(*((h.until == day, literal(datetime.combine(day + timedelta(days=1), time(), UTC), UTCDateTime))
                       for day in ended_days))
    soon = (select(_POS.customer_id, _POS.currency, func.sum(due).label("amount"), func.count().label("n"),
                   func.min(_POS.due_date).label("first"))
            .where(_POS.customer_id.in_(calm), _POS.due_date >= today,
                   _POS.due_date <= today + timedelta(days=settings.worklist_due_soon_days),
                   _POS.status.in_(sorted(ASKABLE)), due > 0, _not_planned())
            .group_by(_POS.customer_id, _POS.currency).cte("soon"))
    # What just the customers with an invoice due soon owe: grouping every position of the scope to find the big
    # accounts first took seconds at 100,000 invoices.
    owing = (select(_POS.customer_id, _POS.currency, func.sum(_POS.open_amount).label("total"))
             .where(_POS.customer_id.in_(select(soon.c.customer_id)))
             .group_by(_POS.customer_id, _POS.currency).subquery("owing"))
    b = mail_bounces.c
    parts = [
        select(*_part("promise_broken", p.customer_id, p.settled_at, amount=p.amount, currency=p.currency,
                      day=p.promised_for)).where(
            p.customer_id.in_(ids), p.status == "broken", p.settled_at >= now - timedelta(days=BROKEN_DAYS)),
        select(*_part("promise_broken", missed.c.customer_id, missed.c.missed_at, amount=missed.c.amount,
                      currency=missed.c.currency, day=missed.c.due_on, n1=missed.c.seq, n2=missed.c.n,
                      text=literal("instalment", Text))),
        select(*_part("promise_due_today", p.customer_id, start, amount=p.amount, currency=p.currency,
                      day=p.promised_for)).where(p.customer_id.in_(ids), p.status == "open", p.promised_for == today),
        select(*_part("unanswered", d.customer_id, d.created_at, amount=d.amount, currency=d.currency,
                      n1=d.dispute_id, text=literal("dispute", Text))).where(d.customer_id.in_(ids),
                                                                             d.status == "open"),
        select(*_part("unanswered", q.customer_id, q.created_at, n1=q.question_id, text=literal("question", Text)))
        .where(q.customer_id.in_(ids), ~exists().where(question_answers.c.question_id == q.question_id)),
        # One item per customer, arising with the latest bounce; which addresses: `_bounce_details`.
        select(*_part("undeliverable", b.customer_id, func.max(b.bounced_at))).where(
            b.customer_id.in_(calm), b.kind.in_(BOUNCED_KINDS), b.bounced_at >= now - timedelta(days=BROKEN_DAYS),
            _still_on_file()).group_by(b.customer_id),
        select(*_part("large_unviewed", _POS.customer_id, start, amount=func.sum(due), currency=_POS.currency,
                      day=func.min(_POS.due_date), n1=func.count())).where(
            _POS.customer_id.in_(calm), _POS.due_date < today, due >= settings.worklist_large_amount,
            _POS.status.in_(sorted(ASKABLE)), ~exists().where(invoice_views.c.invoice_id == _POS.invoice_id),
            _not_planned()).group_by(_POS.customer_id, _POS.currency),
        select(*_part("hold_ended", h.customer_id, hold_over, day=h.until, text=h.reason)).where(
            h.customer_id.in_(calm), h.released_at.is_(None), h.until < today, h.until >= ended_days[-1]),
        select(*_part("due_soon_big", soon.c.customer_id, start, amount=soon.c.amount, currency=soon.c.currency,
                      day=soon.c.first, n1=soon.c.n)).select_from(soon.join(owing, and_(
                          owing.c.customer_id == soon.c.customer_id, owing.c.currency == soon.c.currency)))
        .where(owing.c.total >= settings.worklist_big_account),
    ]
    return union_all(*parts).subquery("candidates")


def _classified(settings: Settings, collector: str, now: datetime, offset: int, per_page: int) -> Any:
    """The candidates, each classified (done, to do, snoozed; `state`), as a CTE read three times: the page of the
    items to do, the first DONE_SHOWN done (each in the documented order), and how many items each state and reason
    has (rows without a customer, the count in `n`). Two top-N sorts and a count rather than numbering every item:
    the team's list has some 12,000 candidates (bench/workbench.py)."""
    c = _candidates(settings, collector, now)
    done = last_staff_touches.c.touched_at >= c.c.since
    snoozed = exists().where(worklist_snoozes.c.customer_id == c.c.customer_id, worklist_snoozes.c.reason == c.c.reason,
                             worklist_snoozes.c.until >= now.date())
    named = (select(c, customers.c.name, collector_of().label("collector"),
                    case((done, DONE), (snoozed, SNOOZED), else_=TODO).label("state"))
             .select_from(with_assignments(c.join(customers, customers.c.customer_id == c.c.customer_id))
                          .outerjoin(last_staff_touches, last_staff_touches.c.customer_id == c.c.customer_id))
             .cte("named"))
    k = named.c
    order = [k.rank, k.amount.desc(), k.name, k.customer_id, k.since, k.n1]
    item = [*k, literal(0, Integer).label("n")]
    todo = select(*item).where(k.state == TODO).order_by(*order).offset(offset).limit(per_page).subquery("todo")
    done_first = select(*item).where(k.state == DONE).order_by(*order).limit(DONE_SHOWN).subquery("done_first")
    nothing = {"customer_id": String, "since": UTCDateTime, "amount": BigInteger, "currency": String, "day": Date,
               "n1": Integer, "n2": Integer, "text": Text, "name": String, "collector": String}
    counts = select(*(col if col.name in ("reason", "rank", "state") else type_coerce(null(), nothing[col.name])
                      .label(col.name) for col in k), func.count().label("n")).group_by(k.reason, k.rank, k.state)
    rows = union_all(select(todo), select(done_first), counts).subquery("rows")
    r = rows.c
    return select(rows).order_by(r.state, r.rank, r.amount.desc(), r.name, r.customer_id, r.since, r.n1)


def _item(r: Any) -> Item:
    day = r.day.isoformat() if r.day is not None else ""
    detail = {
        "promise_broken": f"instalment {r.n1} of {r.n2} missed (due {day})" if r.text == "instalment"
        else f"promised by {day}",
        "promise_due_today": f"promised by {day}",
        "unanswered": f"dispute D-{r.n1}" if r.text == "dispute" else f"question Q-{r.n1}",
        "undeliverable": "",
        "large_unviewed": f"{r.n1} invoice(s), oldest due {day}",
        "hold_ended": f"on hold until {day}: {r.text}",
        "due_soon_big": f"{r.n1} invoice(s), first due {day}",
    }[r.reason]
    return Item(r.customer_id, r.name, r.collector, r.reason, r.since, amount=int(r.amount or 0),
                currency=r.currency or "", detail=detail)


def _still_on_file() -> Any:
    """A bounced address no longer on file for the customer is no reason: the export already corrected it."""
    b = mail_bounces.c
    return exists().where(contacts.c.customer_id == b.customer_id, func.lower(contacts.c.email) == b.recipient)


def _bounce_details(conn: Connection, items: list[Item], now: datetime) -> None:
    """The detail of the shown "undeliverable" items: each address that bounced lately and how."""
    if not items:
        return
    b = mail_bounces.c
    found: dict[str, dict[str, Any]] = {}
    for r in conn.execute(select(b.customer_id, b.recipient, b.kind, b.status, b.bounced_at).where(
            b.customer_id.in_(sorted({i.customer_id for i in items})), b.kind.in_(BOUNCED_KINDS),
            b.bounced_at >= now - timedelta(days=BROKEN_DAYS), _still_on_file())
            .order_by(b.customer_id, b.bounced_at.desc())):
        found.setdefault(r.customer_id, {}).setdefault(r.recipient, r)  # newest first: an address's latest bounce
    for item in items:
        item.detail = "; ".join(
            f"{'reminder' if r.kind == 'reminder' else 'invoice email'} to {address} bounced "
            f"{r.bounced_at.date().isoformat()}{f' ({r.status})' if r.status else ''}"
            for address, r in found.get(item.customer_id, {}).items())


def _not_planned() -> Any:
    """An invoice on an open payment plan is chased by its instalments (a missed one is "promise broken"), not as a
    large overdue amount or a due-soon invoice: the collector already agreed how it is paid."""
    return ~exists().where(payment_plans.c.invoice_id == _POS.invoice_id, payment_plans.c.status == "open")


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
