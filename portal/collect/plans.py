"""Payment plans: a collector splits ONE invoice of a customer into dated instalments (docs/collect.md,
"Payment plans").

Guarantees:
- a plan's total is the invoice's `due` by THE rule (portal/balances) when the plan is made; an invoice that
  owes nothing, is (partly) in dispute, or already has an open plan is refused, and so is another customer's
  invoice (checked against the store, never taken from the form);
- the instalments fall weekly, every two weeks or monthly from the start day (monthly keeps the start's day of
  the month, clamped to a shorter month's end: 31 Jan, 28 Feb, 31 Mar); there are MIN_COUNT..MAX_COUNT of them;
- the amounts are split evenly in minor units with the last one balancing the total, or typed per instalment:
  each more than zero, their sum equal to the total, else nothing is written and the message says which;
- only collectors, managers and admins make or cancel plans (checked here as well as by the view);
- an instalment unpaid once its day plus `promise_grace_days` has passed is **missed**: recorded once (the open
  plan's row is locked while judged), as a broken promise on the timeline (touch `promise_broken`), on the
  worklist and in the activity report; a plan whose total arrived is **kept** (touch `promise_kept`).
What "arrived" and "paid" mean is portal/balances/instalments.py, shared with the pages and reminders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.engine import Connection

from portal.balances import instalments, position
from portal.collect.access import Actor, CollectRefused, require_worker
from portal.collect.touches import customer_exists, own_invoices
from portal.core.config import Settings
from portal.core.money import AmountError, format_money, parse_amount, to_decimal
from portal.store import jobqueue
from portal.store.collect import insert_touch, of_customers
from portal.store.database import Store
from portal.store.plans import open_plans, payment_plans, plan_instalments
from portal.store.tables import invoices

FREQUENCIES = {"weekly": relativedelta(weeks=1), "biweekly": relativedelta(weeks=2),
               "monthly": relativedelta(months=1)}
FREQUENCY_TEXT = {"weekly": "weekly", "biweekly": "every two weeks", "monthly": "monthly"}
# One instalment is a promise to pay, not a plan. 36 is three years of monthly instalments: a longer schedule is
# financing (interest, a credit decision), not collecting an invoice, and a list the customer can still read.
MIN_COUNT, MAX_COUNT = 2, 36
MAX_START_DAYS = 366  # the first instalment within a year, as a collector's promise


@dataclass(frozen=True)
class Proposal:
    """A plan as typed on the staff form: the invoice, the frequency, the first day (YYYY-MM-DD), the number of
    instalments, and optionally one amount per instalment in major units ("250.00"; empty: the even split)."""

    invoice_id: str
    frequency: str
    start: str
    count: str
    amounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    """A checked plan, before or as saved: what the staff form previews."""

    invoice_id: str
    number: str
    currency: str
    total: int
    unsettled: int  # open + pending when planned
    frequency: str
    schedule: tuple[tuple[date, int], ...]

    @property
    def typed_amounts(self) -> list[str]:
        """The amounts as the staff form shows them to edit (major units, "133.33"; none for JPY)."""
        return [str(to_decimal(amount, self.currency)) for _, amount in self.schedule]


def schedule_days(start: date, frequency: str, count: int) -> list[date]:
    """The instalments' days. Each is counted from the start (start + k months), not from the previous one, so
    a plan from the 31st keeps the 31st where the month has one."""
    step = FREQUENCIES[frequency]
    return [start + step * k for k in range(count)]


def even_split(total: int, count: int) -> list[int]:
    """`total` minor units in `count` equal parts, the last one balancing (it takes the remainder)."""
    base = total // count
    return [base] * (count - 1) + [total - base * (count - 1)]


def _count(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        raise CollectRefused(f"Instalments: {text.strip()[:20]!r} is not a whole number") from None
    if not MIN_COUNT <= count <= MAX_COUNT:
        raise CollectRefused(f"Instalments: {count}; a plan has {MIN_COUNT} to {MAX_COUNT} instalments")
    return count


def _start(text: str, today: date) -> date:
    try:
        start = date.fromisoformat(text.strip())
    except ValueError:
        raise CollectRefused(f"First instalment: {text.strip()[:40]!r} is not a date (YYYY-MM-DD)") from None
    if start < today:
        raise CollectRefused(f"First instalment: {start.isoformat()} has passed")
    if start > today + timedelta(days=MAX_START_DAYS):
        raise CollectRefused(f"First instalment: at most {MAX_START_DAYS} days ahead")
    return start


def _amounts(typed: tuple[str, ...], total: int, count: int, currency: str) -> list[int]:
    if not any(a.strip() for a in typed):
        if total < count:
            raise CollectRefused(f"{format_money(total, currency, 'en_US')} cannot be split into {count} instalments")
        return even_split(total, count)
    if len(typed) != count:
        raise CollectRefused(f"give {count} amounts, one per instalment (got {len(typed)})")
    amounts = []
    for seq, text in enumerate(typed, start=1):
        try:
            amount = parse_amount(text.replace(",", "")[:40], currency)
        except AmountError as exc:
            raise CollectRefused(f"Instalment {seq}: {exc}") from None
        if amount <= 0:
            raise CollectRefused(f"Instalment {seq}: the amount must be more than zero")
        amounts.append(amount)
    if sum(amounts) != total:
        raise CollectRefused(f"the instalments add up to {format_money(sum(amounts), currency, 'en_US')}; "
                             f"they must add up to {format_money(total, currency, 'en_US')}, what the invoice owes")
    return amounts


def _draft(conn: Connection, customer_id: str, proposal: Proposal, today: date) -> Draft:
    if not customer_exists(conn, customer_id):
        raise CollectRefused(f"customer {customer_id!r}: no such customer", 404)
    if not proposal.invoice_id.strip():
        raise CollectRefused("choose the invoice the plan is for")
    [invoice_id] = own_invoices(conn, customer_id, [proposal.invoice_id.strip()])
    if proposal.frequency not in FREQUENCIES:
        raise CollectRefused(f"Frequency: {proposal.frequency[:20]!r}; use one of {', '.join(FREQUENCIES)}")
    count, start = _count(proposal.count), _start(proposal.start, today)
    # Locked first (PostgreSQL), so two collectors planning one invoice at once make one plan.
    row = conn.execute(select(invoices.c.number, invoices.c.currency).where(invoices.c.invoice_id == invoice_id)
                       .with_for_update()).one()
    pos = position.of_invoices(conn, [invoice_id])[invoice_id]
    if pos.disputed > 0:
        raise CollectRefused(f"invoice {row.number} is in dispute: resolve the dispute before planning it")
    if pos.due <= 0:
        raise CollectRefused(f"invoice {row.number} owes nothing that can be planned ({pos.status_text.lower()})")
    if invoice_id in open_plans(conn, [customer_id]):
        raise CollectRefused(f"invoice {row.number} already has a payment plan; cancel it first")
    amounts = _amounts(proposal.amounts, pos.due, count, row.currency)
    return Draft(invoice_id, row.number, row.currency, pos.due, pos.open + pos.pending, proposal.frequency,
                 tuple(zip(schedule_days(start, proposal.frequency, count), amounts, strict=True)))


def preview(store: Store, actor: Actor, customer_id: str, proposal: Proposal, now: datetime | None = None) -> Draft:
    """The plan `proposal` would make, checked as `make_plan` checks it; nothing is written."""
    require_worker(actor)
    with store.begin() as conn:
        return _draft(conn, customer_id, proposal, (now or datetime.now(UTC)).date())


def make_plan(store: Store, actor: Actor, customer_id: str, proposal: Proposal, now: datetime | None = None) -> int:
    """Record the plan and its touch in one transaction; returns the plan id. CollectRefused: nothing written."""
    require_worker(actor)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        draft = _draft(conn, customer_id, proposal, now.date())
        plan_id = conn.execute(insert(payment_plans).values(
            customer_id=customer_id, invoice_id=draft.invoice_id, currency=draft.currency, total=draft.total,
            unsettled_at_plan=draft.unsettled, frequency=draft.frequency, made_by=actor.email,
            collector=actor.email, status="open", created_at=now, settled_at=None, arrived=0)
            .returning(payment_plans.c.plan_id)).scalar_one()
        conn.execute(insert(plan_instalments), [{"plan_id": plan_id, "seq": seq, "due_on": day, "amount": amount,
                                                 "missed_at": None}
                                                for seq, (day, amount) in enumerate(draft.schedule, start=1)])
        insert_touch(conn, {"customer_id": customer_id, "kind": "plan", "outcome": "",
                            "body": f"plan #{plan_id}: {format_money(draft.total, draft.currency, 'en_US')} in "
                                    f"{len(draft.schedule)} instalments, {FREQUENCY_TEXT[draft.frequency]} from "
                                    f"{draft.schedule[0][0].isoformat()}, made by {actor.email}",
                            "collector": actor.email, "created_by": actor.email, "contact_id": "",
                            "occurred_at": now}, [draft.invoice_id])
        jobqueue.enqueue_refresh(conn, customer_id, now)  # the customer's pages show the plan within seconds
        return int(plan_id)


def cancel_plan(store: Store, actor: Actor, customer_id: str, plan_id: int, now: datetime | None = None) -> None:
    """End an open plan of the customer: its invoice is chased as usual again (and may get a new plan)."""
    require_worker(actor)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        row = conn.execute(select(payment_plans).where(payment_plans.c.plan_id == plan_id,
                                                       payment_plans.c.customer_id == customer_id)
                           .with_for_update()).first()
        if row is None:
            raise CollectRefused(f"plan #{plan_id} is not a plan of customer {customer_id!r}", 404)
        if row.status != "open":
            raise CollectRefused(f"plan #{plan_id} is {row.status} already")
        conn.execute(update(payment_plans).where(payment_plans.c.plan_id == plan_id)
                     .values(status="cancelled", settled_at=now))
        insert_touch(conn, {"customer_id": customer_id, "kind": "plan_cancelled", "outcome": "",
                            "body": f"plan #{plan_id}, cancelled by {actor.email}", "collector": actor.email,
                            "created_by": actor.email, "contact_id": "", "occurred_at": now}, [row.invoice_id])
        jobqueue.enqueue_refresh(conn, customer_id, now)


def judge_plans(store: Store, settings: Settings, now: datetime | None = None,
                customer_ids: Iterable[str] | Select | None = None) -> dict[str, int]:
    """Judge the open plans (of some customers: ids or a subquery of them; or all): record each instalment newly
    missed and each plan newly paid in full, once. Returns {"kept": plans kept now, "missed": instalments missed
    now}."""
    now = now or datetime.now(UTC)
    counts = {"kept": 0, "missed": 0}
    with store.begin() as conn:
        query = select(payment_plans).where(payment_plans.c.status == "open").order_by(payment_plans.c.plan_id)
        if customer_ids is not None:
            query = query.where(of_customers(payment_plans.c.customer_id, customer_ids))
        rows = conn.execute(query.with_for_update()).all()
        if not rows:
            return counts
        parts: dict[int, list[Any]] = {}
        for p in conn.execute(select(plan_instalments).where(
                plan_instalments.c.plan_id.in_([r.plan_id for r in rows]))
                .order_by(plan_instalments.c.plan_id, plan_instalments.c.seq)):
            parts.setdefault(p.plan_id, []).append(p)
        found = position.of_invoices(conn, {r.invoice_id for r in rows})
        for r in rows:
            got = instalments.arrived(r.unsettled_at_plan, found.get(r.invoice_id))
            mine = parts.get(r.plan_id, [])
            plan = instalments.state(tuple((p.due_on, p.amount) for p in mine), r.total, got,
                                     found.get(r.invoice_id), now.date(), settings.promise_grace_days)
            touch = {"customer_id": r.customer_id, "outcome": "", "collector": r.collector, "created_by": "",
                     "contact_id": "", "occurred_at": now}
            if plan.paid_in_full:
                conn.execute(update(payment_plans).where(payment_plans.c.plan_id == r.plan_id)
                             .values(status="kept", settled_at=now, arrived=got))
                insert_touch(conn, {**touch, "kind": "promise_kept", "body": f"plan #{r.plan_id} paid in full"},
                             [r.invoice_id])
                counts["kept"] += 1
                continue
            if got != r.arrived:
                conn.execute(update(payment_plans).where(payment_plans.c.plan_id == r.plan_id).values(arrived=got))
            for p, item in zip(mine, plan.instalments, strict=True):
                if item.state == instalments.MISSED and p.missed_at is None:
                    conn.execute(update(plan_instalments).where(plan_instalments.c.plan_id == r.plan_id,
                                                                plan_instalments.c.seq == p.seq)
                                 .values(missed_at=now))
                    insert_touch(conn, {**touch, "kind": "promise_broken",
                                        "body": f"instalment {p.seq} of {plan.count} missed (plan #{r.plan_id}, "
                                                f"{format_money(p.amount, r.currency, 'en_US')} due "
                                                f"{p.due_on.isoformat()})"}, [r.invoice_id])
                    counts["missed"] += 1
    return counts


def customer_plans(store: Store, settings: Settings, customer_id: str, now: datetime | None = None,
                   limit: int = 50) -> list[dict[str, Any]]:
    """The customer's plans, newest first, each with its invoice number and, for an open plan, `state`
    (portal/balances/instalments.PlanState) on `now`'s day; closed plans carry their stored instalments."""
    today = (now or datetime.now(UTC)).date()
    with store.begin() as conn:
        rows = [r._asdict() for r in conn.execute(
            select(payment_plans, invoices.c.number).select_from(payment_plans.join(
                invoices, invoices.c.invoice_id == payment_plans.c.invoice_id))
            .where(payment_plans.c.customer_id == customer_id)
            .order_by(payment_plans.c.created_at.desc(), payment_plans.c.plan_id.desc()).limit(limit))]
        if not rows:
            return []
        schedules: dict[int, list[tuple[date, int]]] = {}
        for p in conn.execute(select(plan_instalments).where(
                plan_instalments.c.plan_id.in_([r["plan_id"] for r in rows]))
                .order_by(plan_instalments.c.plan_id, plan_instalments.c.seq)):
            schedules.setdefault(p.plan_id, []).append((p.due_on, p.amount))
        found = position.of_invoices(conn, {r["invoice_id"] for r in rows})
    for r in rows:
        now_pos = found.get(r["invoice_id"])
        got = instalments.arrived(r["unsettled_at_plan"], now_pos) if r["status"] == "open" else r["arrived"]
        r["state"] = instalments.state(tuple(schedules.get(r["plan_id"], ())), r["total"], got, now_pos, today,
                                       settings.promise_grace_days)
        r["frequency_text"] = FREQUENCY_TEXT.get(r["frequency"], r["frequency"])
    return rows


def missed_instalments(customer_ids: Any, since: datetime) -> Any:
    """A query of the instalments judged missed since `since`, of these customers (a list of ids or a subquery of
    them): what the worklist shows as broken promises. Columns: customer_id, currency, seq, amount, due_on,
    missed_at, n (the plan's number of instalments)."""
    counts = (select(plan_instalments.c.plan_id, func.count().label("n"))
              .group_by(plan_instalments.c.plan_id).subquery())
    return (select(payment_plans.c.customer_id, payment_plans.c.currency, plan_instalments.c.seq,
                   plan_instalments.c.amount, plan_instalments.c.due_on, plan_instalments.c.missed_at, counts.c.n)
            .select_from(plan_instalments.join(payment_plans, payment_plans.c.plan_id == plan_instalments.c.plan_id)
                         .join(counts, counts.c.plan_id == plan_instalments.c.plan_id))
            .where(payment_plans.c.customer_id.in_(customer_ids), plan_instalments.c.missed_at >= since))
