"""Where a payment plan's instalments stand (docs/collect.md, "Payment plans"): pure arithmetic on the plan's
stored schedule and the invoice's position now, so the staff pages, the customer's pages, the pay form, the
reminders and the judging of plans (portal/collect/plans.py) all say the same.

- money **arrived** for a plan = what the invoice still owed when the plan was made (open + pending) less what
  it owes now (open + pending), never below zero: a bank payment still settling has not arrived, an invoice the
  ERP closed or lowered has (as for promises to pay);
- instalment k is **paid** when arrived reaches the sum of instalments 1..k; otherwise it is **missed** once its
  day plus `promise_grace_days` has passed, **due** from its day, and **upcoming** before it;
- what the customer is asked for now (`asked`) is the sum of the instalments due through today less what
  arrived; when nothing is due yet, what the next unpaid instalment still needs. Never more than the invoice's
  `due` by the balances rule (a part in dispute since, or paid elsewhere, is not asked for).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from portal.balances.rule import Position

PAID, DUE, MISSED, UPCOMING = "paid", "due", "missed", "upcoming"


@dataclass(frozen=True)
class Instalment:
    seq: int  # 1..count
    day: date
    amount: int
    state: str  # paid | due | missed | upcoming


@dataclass(frozen=True)
class PlanState:
    instalments: tuple[Instalment, ...]
    arrived: int
    total: int
    asked: int  # what the customer is asked for now (minor units); 0 when fully paid
    asked_by: date | None  # the day of the earliest unpaid instalment, None when fully paid

    @property
    def count(self) -> int:
        return len(self.instalments)

    @property
    def paid_in_full(self) -> bool:
        return self.arrived >= self.total


def arrived(unsettled_at_plan: int, now: Position | None) -> int:
    """Money arrived for a plan since it was made; `now` None: the invoice is gone from the store (nothing owed)."""
    owed_now = 0 if now is None else now.open + now.pending
    return max(0, unsettled_at_plan - owed_now)


def state(schedule: tuple[tuple[date, int], ...], total: int, got: int, now: Position | None, today: date,
          grace_days: int) -> PlanState:
    """The instalments of a plan (`schedule`: (day, amount) in order) with `got` arrived, on `today`."""
    grace = timedelta(days=grace_days)
    cumulative, items, due_through = 0, [], 0
    first_unpaid: tuple[date, int] | None = None
    for seq, (day, amount) in enumerate(schedule, start=1):
        cumulative += amount
        if got >= cumulative:
            kind = PAID
        elif today > day + grace:
            kind = MISSED
        elif today >= day:
            kind = DUE
        else:
            kind = UPCOMING
        if kind != PAID and first_unpaid is None:
            first_unpaid = (day, cumulative)
        if day <= today:
            due_through = cumulative
        items.append(Instalment(seq, day, amount, kind))
    if first_unpaid is None:
        return PlanState(tuple(items), got, total, 0, None)
    asked = due_through - got if due_through > got else first_unpaid[1] - got
    if now is not None:
        asked = min(asked, max(0, now.due))
    return PlanState(tuple(items), got, total, max(0, asked), first_unpaid[0])
