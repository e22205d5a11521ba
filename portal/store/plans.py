"""Payment plans (portal/collect/plans.py): an invoice split into dated instalments.

Two queries live here because layers below the workbench need them: `planned_invoices` (autopay leaves an
invoice on an open plan alone; reminders chase its instalments, not the invoice) and `open_plans` (the
instalments of each open plan, for the reminders and the customer's pages).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table, select
from sqlalchemy.engine import Connection

from portal.store.tables import ID, UTCDateTime, metadata

# `status`: open -> kept (fully paid) | cancelled, each once. A missed instalment does not end the plan.
payment_plans = Table(
    "payment_plans", metadata,
    Column("plan_id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False),
    Column("invoice_id", String(ID), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", BigInteger, nullable=False),  # the invoice's `due` when the plan was made (minor units)
    # open + pending of the invoice when the plan was made: money arrived since = this less what it owes now
    Column("unsettled_at_plan", BigInteger, nullable=False),
    Column("frequency", String(10), nullable=False),  # weekly | biweekly | monthly
    Column("made_by", String(320), nullable=False),
    Column("collector", String(320), nullable=False, default=""),  # whose plan it counts as
    Column("status", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime, nullable=True),  # when it was judged kept, or cancelled
    Column("arrived", BigInteger, nullable=False, default=0),  # money arrived, as last judged
    Index("ix_payment_plans_status", "status"),
    Index("ix_payment_plans_customer_id", "customer_id"),
    Index("ix_payment_plans_invoice_id", "invoice_id"),
)

# `missed_at`: when the instalment was judged missed (its day + promise_grace_days passed unpaid), set once.
plan_instalments = Table(
    "plan_instalments", metadata,
    Column("plan_id", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),  # 1..count
    Column("due_on", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("missed_at", UTCDateTime, nullable=True),
    Index("ix_plan_instalments_missed_at", "missed_at"),
)


@dataclass(frozen=True)
class StoredPlan:
    plan_id: int
    customer_id: str
    invoice_id: str
    currency: str
    total: int
    unsettled_at_plan: int
    instalments: tuple[tuple[date, int], ...]  # (day, amount) in order


def open_plans(conn: Connection, customer_ids: Iterable[str] | None = None) -> dict[str, StoredPlan]:
    """invoice id -> its open plan (an invoice has at most one), of some customers or all."""
    query = select(payment_plans).where(payment_plans.c.status == "open")
    if customer_ids is not None:
        query = query.where(payment_plans.c.customer_id.in_(sorted(set(customer_ids))))
    rows = conn.execute(query).all()
    if not rows:
        return {}
    parts: dict[int, list[tuple[date, int]]] = {}
    for r in conn.execute(select(plan_instalments).where(plan_instalments.c.plan_id.in_([r.plan_id for r in rows]))
                          .order_by(plan_instalments.c.plan_id, plan_instalments.c.seq)):
        parts.setdefault(r.plan_id, []).append((r.due_on, r.amount))
    return {r.invoice_id: StoredPlan(r.plan_id, r.customer_id, r.invoice_id, r.currency, r.total,
                                     r.unsettled_at_plan, tuple(parts.get(r.plan_id, ())))
            for r in rows}


def planned_invoices(conn: Connection) -> set[str]:
    """The invoices on an open plan: autopay leaves them alone, reminders chase their instalments instead."""
    return set(conn.execute(select(payment_plans.c.invoice_id).where(payment_plans.c.status == "open")).scalars())


def plan_outcomes(conn: Connection, start: datetime, end: datetime) -> list[tuple[str, str, datetime | None,
                                                                                   datetime | None]]:
    """What plans add to the activity report's promises, as (collector, status, made at, judged at) rows shaped
    like a promise's: a plan made counts as a promise made, a plan paid in full as one kept, and each missed
    instalment as one broken (made at None: it was counted when the plan was made)."""
    plans = conn.execute(select(payment_plans.c.collector, payment_plans.c.status, payment_plans.c.created_at,
                                payment_plans.c.settled_at).where(
        ((payment_plans.c.created_at >= start) & (payment_plans.c.created_at < end))
        | ((payment_plans.c.settled_at >= start) & (payment_plans.c.settled_at < end)))).all()
    missed = conn.execute(select(payment_plans.c.collector, plan_instalments.c.missed_at)
                          .select_from(plan_instalments.join(
                              payment_plans, payment_plans.c.plan_id == plan_instalments.c.plan_id))
                          .where(plan_instalments.c.missed_at >= start, plan_instalments.c.missed_at < end)).all()
    return [(r.collector, r.status, r.created_at, r.settled_at) for r in plans] + [
        (r.collector, "broken", None, r.missed_at) for r in missed]
