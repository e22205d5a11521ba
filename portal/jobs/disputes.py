"""Staff actions on a dispute, followed by re-rendering and publishing the customer's pages so they show it.

The disputes domain (portal/disputes/service.py) changes the state and emails the customer; it cannot render
pages itself, because the build imports it (the pages show each dispute's state). This layer above both does
the two in order: the state change commits, then the customer's pages are re-rendered and published
(portal/jobs/republish.py), then (for a resolution) the customer is emailed, so the email's link opens a page
that already shows the outcome. A failed re-render is logged and never undoes the change: the next build
renders it anyway, since dispute states are part of each customer's fingerprint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from portal.core.config import Settings, load_settings
from portal.disputes import service
from portal.jobs.republish import refresh_customer
from portal.mail.transport import Transport
from portal.store.database import Store
from portal.store.disputes import DisputeRow

log = logging.getLogger(__name__)


def review(store: Store, dispute_id: int, by: str, now: datetime | None = None, *,
           settings: Settings | None = None) -> DisputeRow:
    """portal.disputes.service.review; with `settings`, the customer's pages are then re-rendered and published
    so they show the new status (only when the status changed)."""
    refresh = None if settings is None else _refresher(settings, store)
    return service.review(store, dispute_id, by, now, after_commit=refresh)


def resolve(store: Store, dispute_id: int, outcome: str, note: str, by: str, *, settings: Settings | None = None,
            transport: Transport | None = None, now: datetime | None = None) -> DisputeRow:
    """portal.disputes.service.resolve, with the customer's pages re-rendered and published after the commit and
    before the customer is emailed. `settings` None: read them (portal.toml < PORTAL_*), as the CLI does."""
    settings = settings or load_settings()
    return service.resolve(store, dispute_id, outcome, note, by, settings=settings, transport=transport, now=now,
                           after_commit=_refresher(settings, store))


def _refresher(settings: Settings, store: Store) -> Callable[[str], None]:
    def refresh(customer_id: str) -> None:
        try:
            refresh_customer(settings, store, customer_id)
        except Exception:  # noqa: BLE001 - the status change is committed; the page catches up on the next build
            log.exception("dispute status: republishing customer %s failed", customer_id)
    return refresh
