"""What the staff customer page shows of the workbench, read in one call: the customer's promises (judged first,
so the page never shows as open a promise that is already kept or broken), its current hold, its questions and
their answers, and the touches the user may read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from portal.collect.access import Actor
from portal.collect.answers import customer_questions
from portal.collect.holds import current_holds
from portal.collect.plans import customer_plans, judge_plans
from portal.collect.promises import customer_promises, settle_promises
from portal.collect.touches import customer_touches
from portal.core.config import Settings
from portal.store.database import Store


def customer_workbench(store: Store, settings: Settings, actor: Actor, customer_id: str,
                       now: datetime | None = None) -> dict[str, Any]:
    """touches (newest first, notes filtered by `collect_private_notes`), hold (or None), promises and questions
    (newest first), can_work (whether `actor` may log touches, holds and promises)."""
    now = now or datetime.now(UTC)
    settle_promises(store, settings, now, [customer_id])
    judge_plans(store, settings, now, [customer_id])
    return {"touches": customer_touches(store, actor, customer_id, private_notes=settings.collect_private_notes),
            "hold": current_holds(store, [customer_id], now.date()).get(customer_id),
            "promises": customer_promises(store, customer_id),
            "plans": customer_plans(store, settings, customer_id, now),
            "questions": customer_questions(store, customer_id),
            "can_work": actor.works_customers}
