"""Applying a verified Stripe event: record it once, keep its snapshot, move the attempt to what they say.

Guarantees:
- Idempotent: the event id is inserted into `stripe_events` as the transaction's first statement; a
  duplicate (even a concurrent one) fails on that key and changes nothing.
- Order-independent: the attempt's status is derived from the newest snapshot of each Stripe object
  (portal.payments.state), so the same events in any order end in the same state. A refund or dispute that
  names a PaymentIntent or Charge no attempt has claimed yet is kept as an orphan and joins its attempt
  when an event names that id (Stripe retries for 3 days; orphans are kept for 7).
- No network: whose an event is comes from the payload (our attempt id in the metadata of sessions and
  PaymentIntents) or from ids earlier events stored. Nothing calls Stripe for an event, ours or not.
- Side effects of a change (counting the payment against its invoices, the event log, the queued jobs that
  re-render the customer's pages and mail the payer) happen in the same transaction as the snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from portal.balances import stored
from portal.core.errors import PortalError
from portal.payments.allocations import COUNTED, apply_allocations
from portal.payments.state import LEGACY, Derived, derive, merge, read_event
from portal.store import jobqueue
from portal.store import payments as paystore
from portal.store.database import Store, StoreUnavailable
from portal.store.payments import Attempt, Snapshot

log = logging.getLogger(__name__)

ORPHAN_DAYS = 7
PAYMENT_MAIL = "payment_mail"  # the job that mails the payer (portal/jobs/mailjobs.py)
REVIEW = frozenset({"refunded", "partially_refunded", "disputed", "reinstated"})


class EventRefused(PortalError):
    """An event this program cannot record (no id)."""


@dataclass(frozen=True)
class Change:
    """An attempt that moved: what the webhook does after the commit (re-render, publish, mail)."""

    attempt_id: str
    customer_id: str
    old: str
    new: str
    method: str
    currency: str
    amount: int
    payer_email: str
    failure_reason: str
    numbers: tuple[str, ...]
    verify_url: str = ""


def apply_event(store: Store, event: Mapping[str, Any], now: datetime | None = None) -> Change | None:
    """Record the event's id and its effect in ONE transaction. None: a duplicate, an event that is not the
    portal's, one whose attempt is not known yet (kept), or one that changed no status."""
    event_id, kind = str(event.get("id") or ""), str(event.get("type") or "")
    if not event_id:
        raise EventRefused("an event without an id")
    reading = read_event(event)
    now = now or datetime.now(UTC)
    try:
        with store.begin() as conn:
            # First statement of the transaction: a concurrent duplicate waits here, then fails.
            paystore.record_stripe_event(conn, event_id, kind[:100], now)
            if reading is None:
                return None
            snap = reading.snapshot
            paystore.lock_stripe_ids(conn, (snap.intent, snap.charge))
            attempt_id = reading.attempt_id or paystore.owner_of(conn, snap.intent, snap.charge)
            if not attempt_id:
                known = paystore.snapshot_by_id(conn, snap.object_id)
                paystore.save_snapshots(conn, "", merge({snap.object_id: known} if known else {}, [snap]).values(),
                                        now)
                paystore.prune_orphans(conn, now - timedelta(days=ORPHAN_DAYS))
                return None
            attempt = paystore.get_attempt(conn, attempt_id, lock=True)
            if attempt is None:
                log.warning("stripe event %s names unknown attempt %s", event_id, attempt_id)
                return None
            paystore.set_event_attempt(conn, event_id, attempt_id)
            return _apply(store, conn, attempt, snap, now)
    except StoreUnavailable as exc:
        if isinstance(exc.__cause__, IntegrityError):
            with store.begin() as conn:
                if paystore.event_seen(conn, event_id):
                    return None
        raise


def _legacy(attempt: Attempt) -> list[Snapshot]:
    """An attempt moved by events before snapshots were kept: what its status says, as snapshots older than
    any real event (created 0), so that a late event cannot move it back."""
    def snap(kind: str, key: str, **data: Any) -> Snapshot:
        return Snapshot(f"legacy-{key}:{attempt.attempt_id}", kind, 0, 0, LEGACY, data=data)

    intent = {"status": "", "code": "", "message": "", "verify_url": "", "verify_arrival": 0}
    status = attempt.status
    if status == "processing":
        return [snap("session", "session", outcome="completed", email=""), snap("intent", "intent", **{
            **intent, "status": "processing"})]
    if status in ("failed", "expired"):
        return [snap("session", "session", outcome=status, email="")]
    if status in {"succeeded"} | REVIEW:
        result = [snap("intent", "intent", **{**intent, "status": "succeeded"})]
        if attempt.refunded:
            result.append(snap("charge", "charge", status="succeeded", amount=0, refunded=attempt.refunded,
                               currency=""))
        if status in ("disputed", "reinstated"):
            result.append(snap("dispute", "dispute", status="won" if status == "reinstated" else "needs_response",
                               reason=attempt.failure_reason.removeprefix("disputed: ")))
        return result
    return []


def _apply(store: Store, conn: Any, attempt: Attempt, snap: Snapshot, now: datetime) -> Change | None:
    known = {s.object_id: s for s in paystore.snapshots_of(conn, attempt.attempt_id)}
    if not known:
        known = {s.object_id: s for s in _legacy(attempt)}
    merged = merge(known, [snap])
    # Refunds and disputes that arrived before we knew whose they were join now (claiming one may name a
    # further id, hence the loop; each round only adds).
    seen: set[str] = set()
    while True:
        ids = {s.intent for s in merged.values()} | {s.charge for s in merged.values()}
        ids -= seen | {""}
        if not ids:
            break
        seen |= ids
        paystore.lock_stripe_ids(conn, ids)
        merged = merge(merged, paystore.orphans_for(conn, ids))
    paystore.save_snapshots(conn, attempt.attempt_id, [s for k, s in merged.items() if known.get(k) != s], now)
    derived = derive(merged.values(), attempt.amount, attempt.currency)
    return _move(store, conn, attempt, derived, now)


def _move(store: Store, conn: Any, attempt: Attempt, d: Derived, now: datetime) -> Change | None:
    facts: dict[str, Any] = {}
    for key, value in (("payment_intent", d.intent), ("charge", d.charge), ("payer_email", d.payer_email),
                       ("checkout_session", d.checkout_session)):
        if value and value != getattr(attempt, key):
            facts[key] = value
    if d.refunded != attempt.refunded:
        facts["refunded"] = d.refunded
    if d.failure_reason != attempt.failure_reason:
        facts["failure_reason"] = d.failure_reason
    if d.review and not attempt.needs_review:
        facts["needs_review"] = True
    moving = d.status != attempt.status
    if moving:
        facts.update(status=d.status, updated_at=now)
    # The payment counts from the first moment money arrived or a debit is under way, whatever it became
    # since: the same in every order of its events.
    if attempt.counted_at is not None and d.status in ("failed", "expired"):
        # A debit that started and then failed never paid anything: what it had applied is released, as if
        # the failure had been the first event delivered.
        paystore.release_applied(conn, attempt.attempt_id)
        facts.update(counted_at=None, unapplied=0, credit_applied=0)
    elif attempt.counted_at is None and (d.status in COUNTED or d.paid):
        applied = apply_allocations(conn, attempt, store.latest_as_of(conn))
        facts.update(applied, counted_at=now, needs_review=applied["needs_review"] or facts.get(
            "needs_review", attempt.needs_review))
    if facts:
        paystore.update_attempt(conn, attempt.attempt_id, **facts)
        # What the invoices owe follows the attempt, in this transaction (portal/balances/position.py).
        stored.record_change(conn, attempt.attempt_id, now)
        # And the customer's pages follow it: a re-render queued with the change (docs/refresh.md).
        jobqueue.enqueue_refresh(conn, attempt.customer_id, now)
    if not moving:
        return None
    store.add_event(conn, f"payment_{d.status}", attempt.customer_id, detail=attempt.attempt_id)
    numbers = tuple(r.number for r in paystore.allocations_of(conn, attempt.attempt_id))
    change = Change(attempt.attempt_id, attempt.customer_id, attempt.status, d.status, attempt.method,
                    attempt.currency, attempt.amount, facts.get("payer_email") or attempt.payer_email,
                    facts.get("failure_reason", attempt.failure_reason), numbers, d.verify_url)
    # The payer's email is queued after the re-render: jobs of one customer run oldest first, so its link opens
    # a page that shows the payment.
    jobqueue.enqueue(conn, PAYMENT_MAIL, attempt.customer_id, asdict(change), now)
    return change


def verification_url(store: Store, attempt_id: str) -> str:
    """Stripe's page where the customer confirms the microdeposits of an attempt that is verifying."""
    with store.begin() as conn:
        snaps = paystore.snapshots_of(conn, attempt_id)
    intents = [s for s in snaps if s.kind == "intent" and s.data.get("verify_url")]
    return max(intents, key=lambda s: s.stamp).data["verify_url"] if intents else ""
