"""What Stripe's events say about a payment attempt, independent of the order they arrive in.

Stripe does not order events and retries them for days, so an attempt's state is never "the last event
applied". Each event carries a snapshot of one Stripe object (the Checkout Session, the PaymentIntent, a
Charge, a Dispute); for each object the store keeps the newest snapshot seen, newest meaning the greatest
(event `created`, progress rank of the object's status, event id). The attempt's state is then a pure
function of that set of snapshots (`derive`). Keeping the maximum of a set is commutative, associative and
idempotent, so every delivery order of the same events, duplicates included, ends in the same state: a
refund delivered before the payment's success is not lost, it is one of the snapshots the success joins.

Nothing here touches the database or the network: portal.payments.events stores snapshots and moves the attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from portal.core.i18n import N_
from portal.payments.stripe_amounts import from_stripe
from portal.store.payments import Snapshot

# The events the webhook acts on; docs/payments.md and infra/README.md list the same (a test compares them).
HANDLED_EVENTS = frozenset({
    "checkout.session.completed", "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed", "checkout.session.expired",
    "payment_intent.processing", "payment_intent.requires_action", "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
    "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
})

# `last_payment_error.code` values (stripe-python's PaymentIntent.LastPaymentError.code) in words a customer
# understands: ACH returns, and the microdeposit verification that never happened. Stored in English (the staff
# read them); marked N_ so that what a customer is shown is said in the customer's language.
FAILURE_TEXT = {
    "insufficient_funds": N_("insufficient funds"),
    "account_closed": N_("the bank account is closed"),
    "no_account": N_("the bank account could not be found"),
    "debit_not_authorized": N_("the bank did not authorise the debit"),
    "account_number_invalid": N_("the account number is not valid"),
    "bank_account_restricted": N_("the bank account does not accept debits"),
    "payment_method_microdeposit_verification_timeout": N_("the bank account was not verified within 10 days"),
    "payment_method_microdeposit_verification_attempts_exceeded": N_("the bank account could not be verified"),
    "payment_method_microdeposit_failed": N_("the verification deposits could not be sent to the bank account"),
}
GENERIC_FAILURE = N_("the bank payment failed")
# A decline FAILURE_TEXT has no words for (a card's `generic_decline`, `do_not_honor`, ...): the customer is told
# plainly in their language; the records and the staff keep Stripe's own words.
DECLINED = N_("the payment was declined")
_OUR_WORDS = frozenset({*FAILURE_TEXT.values(), GENERIC_FAILURE})


def customer_reason(code: str = "", stored: str = "") -> str:
    """Why a payment failed, as a customer is told it: an English message id to translate in the customer's
    language. From Stripe's failure `code` when known, else from the reason stored on the attempt: FAILURE_TEXT's
    words for a code it knows (or GENERIC_FAILURE), else DECLINED, since Stripe's own message is English only. The
    one mapping of every customer-facing failure (the payment and autopay emails, /pay/done, the pages)."""
    if code:
        return FAILURE_TEXT.get(code) or DECLINED
    return stored if stored in _OUR_WORDS else DECLINED

# Progress ranks break ties between snapshots of one object created in the same second.
_SESSION_RANK = {"completed": 1, "failed": 2, "expired": 2, "paid": 3}
_INTENT_RANK = {"requires_payment_method": 0, "requires_confirmation": 0, "requires_action": 1, "processing": 2,
                "failed": 3, "canceled": 4, "succeeded": 5}
# Dispute statuses of the pinned API version (2026-10-28.endive; stripe-python's Dispute.status).
_DISPUTE_RANK = {"warning_needs_response": 0, "warning_under_review": 1, "warning_closed": 2, "prevented": 2,
                 "needs_response": 3, "under_review": 4, "lost": 5, "appeal_needs_response": 6,
                 "appeal_under_review": 7, "won": 8}
# Money withdrawn by the dispute and not (yet) given back: a chargeback under way or lost, an appeal of a loss.
# Inquiries (warning_*) and prevented disputes take no money (a prevention that refunds shows as a refund).
WITHDRAWN = frozenset({"needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"})


@dataclass(frozen=True)
class Reading:
    """What one event says: whose it is (an attempt id from our metadata, else the ids to match) and the
    snapshot it carries."""

    attempt_id: str
    snapshot: Snapshot


def _id(value: Any) -> str:
    if isinstance(value, Mapping):  # an expanded object
        value = value.get("id")
    return value if isinstance(value, str) else ""


def read_event(event: Mapping[str, Any]) -> Reading | None:
    """The snapshot an event carries, or None for events the portal does not act on or that are not its own
    (a PaymentIntent or Checkout Session without our attempt id belongs to another integration)."""
    kind = str(event.get("type") or "")
    if kind not in HANDLED_EVENTS:
        return None
    obj = (event.get("data") or {}).get("object") or {}
    meta = obj.get("metadata") or {}
    attempt = str(meta.get("attempt_id") or "")[:64]
    created = int(event.get("created") or 0)
    event_id = str(event.get("id") or "")
    object_id = _id(obj.get("id"))
    if not object_id:
        return None
    if kind.startswith("checkout.session."):
        attempt = str(obj.get("client_reference_id") or attempt)[:64]
        outcome = {"checkout.session.async_payment_succeeded": "paid", "checkout.session.async_payment_failed":
                   "failed", "checkout.session.expired": "expired"}.get(kind)
        if outcome is None:  # completed: a bank payment completes "unpaid", with no debit yet
            outcome = "paid" if obj.get("payment_status") == "paid" else "completed"
        email = str((obj.get("customer_details") or {}).get("email") or "")[:320]
        snap = Snapshot(object_id, "session", created, _SESSION_RANK[outcome], event_id,
                        intent=_id(obj.get("payment_intent")), data={"outcome": outcome, "email": email})
        return Reading(attempt, snap) if attempt else None
    if kind.startswith("payment_intent."):
        status = str(obj.get("status") or {"payment_intent.processing": "processing",
                                             "payment_intent.succeeded": "succeeded",
                                             "payment_intent.requires_action": "requires_action"}.get(kind, ""))
        error = obj.get("last_payment_error") or {}
        failed = kind == "payment_intent.payment_failed" or (status == "requires_payment_method" and bool(error))
        verify = ((obj.get("next_action") or {}).get("verify_with_microdeposits") or {}) \
            if status == "requires_action" else {}
        data = {"status": "failed" if failed else status, "code": str(error.get("code") or ""),
                "message": str(error.get("message") or "")[:500],
                "verify_url": str(verify.get("hosted_verification_url") or "")[:1000],
                "verify_arrival": int(verify.get("arrival_date") or 0)}
        snap = Snapshot(object_id, "intent", created, _INTENT_RANK.get(data["status"], 0), event_id,
                        intent=object_id, charge=_id(obj.get("latest_charge")), data=data)
        return Reading(attempt, snap) if attempt else None
    if kind.startswith("charge.dispute."):
        status = str(obj.get("status") or "")
        snap = Snapshot(object_id, "dispute", created, _DISPUTE_RANK.get(status, 0), event_id,
                        intent=_id(obj.get("payment_intent")), charge=_id(obj.get("charge")),
                        data={"status": status, "reason": str(obj.get("reason") or "")[:100]})
        return Reading(attempt, snap)
    # charge.refunded: the charge's total refunded so far (its `refunds` list is not in the payload).
    refunded = int(obj.get("amount_refunded") or 0)
    data = {"status": str(obj.get("status") or ""), "amount": int(obj.get("amount") or 0), "refunded": refunded,
            "currency": str(obj.get("currency") or "")}
    snap = Snapshot(object_id, "charge", created, refunded, event_id, intent=_id(obj.get("payment_intent")),
                    charge=object_id, data=data)
    return Reading(attempt, snap)


def merge(known: Mapping[str, Snapshot], new: Iterable[Snapshot]) -> dict[str, Snapshot]:
    """Keep the newest snapshot of each object (a join: any order, any repetition, the same result)."""
    result = dict(known)
    for snap in new:
        old = result.get(snap.object_id)
        if old is None:
            result[snap.object_id] = snap
            continue
        winner, loser = (snap, old) if snap.stamp > old.stamp else (old, snap)
        # A session's payer email does not change; an event that left it out must not hide it.
        if winner.kind == "session" and not winner.data.get("email") and loser.data.get("email"):
            winner = replace(winner, data={**winner.data, "email": loser.data["email"]})
        result[snap.object_id] = winner
    return result


@dataclass(frozen=True)
class Derived:
    """An attempt's state as its snapshots say."""

    status: str
    paid: bool  # money arrived at some point (it may have gone back since)
    refunded: int = 0  # our minor units
    failure_reason: str = ""
    review: bool = False  # a refund or a dispute of any kind: staff look
    intent: str = ""
    charge: str = ""
    payer_email: str = ""
    checkout_session: str = ""
    verify_url: str = ""
    verify_arrival: int = 0


def _latest(snaps: list[Snapshot]) -> Snapshot | None:
    return max(snaps, key=lambda s: s.stamp, default=None)


LEGACY = "legacy"  # the event id of made-up snapshots


def _real_or_legacy(snaps: list[Snapshot]) -> list[Snapshot]:
    real = [s for s in snaps if s.event_id != LEGACY]
    return real or snaps


def derive(snapshots: Iterable[Snapshot], amount: int, currency: str) -> Derived:
    """The attempt's status from what Stripe's objects say; `amount` is what Stripe charges (our minor units)."""
    by_kind: dict[str, list[Snapshot]] = {}
    for snap in sorted(snapshots, key=lambda s: s.object_id):
        by_kind.setdefault(snap.kind, []).append(snap)
    sessions, intents = by_kind.get("session", []), by_kind.get("intent", [])
    # Snapshots made up for an attempt from before snapshots were kept (portal.payments.events) stand in for the
    # real objects only until those are seen.
    charges, disputes = (_real_or_legacy(by_kind.get(k, [])) for k in ("charge", "dispute"))
    session, intent = _latest(sessions), _latest(_real_or_legacy(intents))
    # A session only moves forward (completed -> paid or failed; open -> expired): its furthest outcome.
    furthest = max(sessions, key=lambda s: (s.rank, s.stamp), default=None)
    outcome = furthest.data["outcome"] if furthest else ""
    pi_status = intent.data["status"] if intent else ""
    # A success is final for a PaymentIntent; a refund or a dispute exists only on a charge that succeeded.
    paid = outcome == "paid" or any(i.data["status"] == "succeeded" for i in intents) or bool(disputes) \
        or any(c.data["status"] == "succeeded" or c.data["refunded"] > 0 for c in charges)
    refunded = sum(from_stripe(c.data["refunded"], currency) for c in charges)
    held = [d for d in disputes if d.data["status"] in WITHDRAWN]
    reason = ""
    if paid:
        if held:
            status, reason = "disputed", f"disputed: {held[0].data['reason'] or 'no reason given'}"
        elif refunded >= amount:
            status = "refunded"
        elif refunded > 0:
            status = "partially_refunded"
        elif any(d.data["status"] == "won" for d in disputes):
            status = "reinstated"
        else:
            status = "succeeded"
    # A bank debit fails once the customer completed Checkout (the session's own failure event, or the
    # PaymentIntent's); a card declined inside Checkout leaves the session open for another card.
    elif outcome == "failed" or (pi_status == "failed" and outcome == "completed"):
        status = "failed"
        code = intent.data["code"] if intent and pi_status == "failed" else ""
        reason = FAILURE_TEXT.get(code) or (intent.data["message"] if code else "") or GENERIC_FAILURE
    elif outcome == "expired":
        status = "expired"
    elif pi_status == "processing":
        status = "processing"
    elif pi_status == "requires_action" and intent and intent.data["verify_url"]:
        status = "verifying"  # microdeposits on their way: no debit exists until the customer confirms them
    else:
        status = "created"
    succeeded_charge = next((c.object_id for c in charges if c.data["status"] == "succeeded"), "")
    return Derived(
        status=status, paid=paid, refunded=refunded, failure_reason=reason,
        review=refunded > 0 or bool(disputes),
        intent=(intent.object_id if intent and intent.event_id != LEGACY else "") or (session.intent if session else "")
        or next((s.intent for s in [*charges, *disputes] if s.intent), ""),
        charge=succeeded_charge or (intent.charge if intent else "") or next((d.charge for d in disputes), ""),
        payer_email=session.data["email"] if session else "",
        checkout_session=session.object_id if session and session.event_id != LEGACY else "",
        verify_url=intent.data["verify_url"] if status == "verifying" and intent else "",
        verify_arrival=intent.data["verify_arrival"] if status == "verifying" and intent else 0)
