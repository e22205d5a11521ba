"""A payment plan as the customer's pages show it (templates/pages/_plan.html): the instalments with their day,
amount and state in the customer's language, and what the pay form asks for now.

Everything comes from the plan stored by the collector (portal/store/plans.py) and the invoice's position by THE
rule, through portal/balances/instalments.py, the same arithmetic the staff pages and the reminders use. The
states are those of the day the page is built: a customer's pages are rebuilt after every payment event and every
night, so "due" and "missed" move on with them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from gettext import NullTranslations
from typing import Any

from portal.balances import instalments
from portal.balances.rule import Position
from portal.core.i18n import N_
from portal.core.money import input_amount
from portal.store.plans import StoredPlan

STATE_TEXT = {instalments.PAID: N_("Paid"), instalments.DUE: N_("Due now"), instalments.MISSED: N_("Missed"),
              instalments.UPCOMING: N_("Not yet due")}


def today() -> date:
    return datetime.now(UTC).date()


def plan_view(plan: StoredPlan | None, pos: Position, currency: str, locale: str, grace_days: int,
              money: Callable[[int, str], str], day: Callable[[date], str], tr: NullTranslations
              ) -> dict[str, Any] | None:
    """The view of the invoice's open plan (None without one)."""
    if plan is None:
        return None
    got = instalments.arrived(plan.unsettled_at_plan, pos)
    state = instalments.state(plan.instalments, plan.total, got, pos, today(), grace_days)
    return {
        "count": state.count,
        "total_text": money(plan.total, currency),
        "asked": state.asked,
        "asked_text": money(state.asked, currency) if state.asked else "",
        "asked_plain": input_amount(state.asked, currency, locale) if state.asked else "",
        "asked_by_text": day(state.asked_by) if state.asked_by else "",
        "instalments": [{"seq": i.seq, "day_iso": i.day.isoformat(), "day_text": day(i.day),
                         "amount_text": money(i.amount, currency), "state": i.state,
                         "state_text": tr.gettext(STATE_TEXT[i.state])} for i in state.instalments],
    }
