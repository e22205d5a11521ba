"""The events Stripe sends along each path a portal payment can take, built by the stand-in in Stripe's shapes.

Each path is a list of events in the order Stripe created them (`created` increasing, or all in one second
with `same_second`); the tests deliver them in other orders, repeated, and expect the same end.
"""

from __future__ import annotations

import time
from typing import Any

from tests.stripe_standin import StripeStandIn

# path -> (method, the attempt's final status, its failure reason, its refunded amount: "all" or minor units)
PATHS: dict[str, tuple[str, str, str, Any]] = {
    "card": ("card", "succeeded", "", 0),
    "card_declined_then_paid": ("card", "succeeded", "", 0),
    "card_refunded_in_two": ("card", "refunded", "", "all"),
    "card_partly_refunded": ("card", "partially_refunded", "", 100),
    "card_dispute_won": ("card", "reinstated", "", 0),
    "card_dispute_lost": ("card", "disputed", "disputed: fraudulent", 0),
    "card_dispute_by_charge_only": ("card", "disputed", "disputed: fraudulent", 0),
    "card_inquiry_closed": ("card", "succeeded", "", 0),
    "card_abandoned": ("card", "expired", "", 0),
    "bank_settles": ("us_bank_account", "succeeded", "", 0),
    "bank_fails": ("us_bank_account", "failed", "insufficient funds", 0),
    "bank_microdeposits_then_settles": ("us_bank_account", "succeeded", "", 0),
    "bank_microdeposits_time_out": ("us_bank_account", "failed", "the bank account was not verified within 10 days",
                                    0),
    "bank_returned_after_settling": ("us_bank_account", "disputed", "disputed: debit_not_authorized", 0),
}


def path_events(standin: StripeStandIn, session: dict[str, Any], path: str, *, same_second: bool = False
                ) -> list[dict[str, Any]]:
    """Stripe's events for `session` (created by the stand-in) along `path`, oldest first."""
    s = standin
    amount = session["amount_total"]
    steps: list[tuple[str, Any]] = []

    def add(kind: str, build: Any) -> None:
        steps.append((kind, build))

    paid = lambda: s.session_object(session, payment_status="paid")  # noqa: E731
    unpaid = lambda: s.session_object(session, payment_status="unpaid")  # noqa: E731
    if path.startswith("card") and path != "card_abandoned":
        if path == "card_declined_then_paid":
            add("payment_intent.payment_failed", lambda: s.intent(session, "requires_payment_method",
                                                                  error_code="card_declined"))
        add("checkout.session.completed", paid)
        add("payment_intent.succeeded", lambda: s.intent(session, "succeeded"))
    if path == "card_abandoned":
        add("checkout.session.expired", lambda: {**s.session_object(session, status="expired"),
                                                 "payment_intent": None})
    if path == "card_refunded_in_two":
        add("charge.refunded", lambda: s.charge(session, refunded=100))
        add("charge.refunded", lambda: s.charge(session, refunded=amount))
    if path == "card_partly_refunded":
        add("charge.refunded", lambda: s.charge(session, refunded=100, with_metadata=False))
    if path.startswith("card_dispute") or path == "bank_returned_after_settling":
        with_intent = path != "card_dispute_by_charge_only"
        reason = "debit_not_authorized" if path.startswith("bank") else "fraudulent"
        add("charge.dispute.created", lambda: s.dispute(session, "needs_response", with_intent=with_intent,
                                                        reason=reason))
        add("charge.dispute.funds_withdrawn", lambda: s.dispute(session, "needs_response", with_intent=with_intent,
                                                                reason=reason))
        if path in ("card_dispute_won", "card_dispute_lost"):
            add("charge.dispute.updated", lambda: s.dispute(session, "under_review"))
            outcome = "won" if path == "card_dispute_won" else "lost"
            add("charge.dispute.closed", lambda: s.dispute(session, outcome))
    if path == "card_inquiry_closed":
        add("charge.dispute.created", lambda: s.dispute(session, "warning_needs_response"))
        add("charge.dispute.closed", lambda: s.dispute(session, "warning_closed"))
    if path.startswith("bank"):
        add("checkout.session.completed", unpaid)
        if "microdeposits" in path:
            add("payment_intent.requires_action", lambda: s.intent(session, "requires_action", microdeposits=True))
        if path == "bank_microdeposits_time_out":
            add("payment_intent.payment_failed", lambda: s.intent(
                session, "requires_payment_method", error_code="payment_method_microdeposit_verification_timeout"))
            add("checkout.session.async_payment_failed", unpaid)
        else:
            add("payment_intent.processing", lambda: s.intent(session, "processing"))
        if path == "bank_fails":
            add("payment_intent.payment_failed", lambda: s.intent(session, "requires_payment_method",
                                                                  error_code="insufficient_funds"))
            add("checkout.session.async_payment_failed", unpaid)
        if path in ("bank_settles", "bank_microdeposits_then_settles", "bank_returned_after_settling"):
            add("checkout.session.async_payment_succeeded", paid)
            add("payment_intent.succeeded", lambda: s.intent(session, "succeeded"))
        if path == "bank_returned_after_settling":
            steps.append(steps.pop(0))  # the dispute comes after the settlement here
            steps.append(steps.pop(0))
    start = int(time.time()) - 3600
    return [s.event(kind, build(), created=start if same_second else start + 10 * n)
            for n, (kind, build) in enumerate(steps)]
