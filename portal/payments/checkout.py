"""The Checkout Session the portal asks Stripe for, from a priced payment (portal.payments.pricing.Quote).

Guaranteed here, so that Stripe never refuses what the customer was told they could pay:
- A session has at most 100 line items (Stripe's limit in `payment` mode), the card-fee line included: past
  that, the last invoices share one line (the allocation per invoice stays in our database).
- Every amount is in Stripe's unit for the currency (portal.payments.stripe_amounts.to_stripe); the minimum
  charge was checked when the payment was priced.
"""

from __future__ import annotations

from typing import Any

from portal.payments.pricing import Quote
from portal.payments.stripe_amounts import to_stripe

MAX_LINE_ITEMS = 100


def _line(currency: str, amount: int, name: str) -> dict[str, Any]:
    return {"quantity": 1, "price_data": {"currency": currency.lower(), "unit_amount": to_stripe(amount, currency),
                                          "product_data": {"name": name[:250]}}}


def line_items(priced: Quote) -> list[dict[str, Any]]:
    """One line per invoice still costing something, the card fee its own line; at most MAX_LINE_ITEMS."""
    notes = [*([f"credit {', '.join(c.number for c in priced.credits)} applied"] if priced.credits else []),
             *(["bank payment discount applied"] if priced.adjustment < 0 else [])]
    suffix = f" ({'; '.join(notes)})" if notes else ""
    # A line a credit paid in full costs nothing on Stripe's page and is left out (the allocation stays ours).
    lines = [line for line in priced.lines if line.charged > 0]
    room = MAX_LINE_ITEMS - (1 if priced.adjustment > 0 else 0)
    shown, folded = (lines, []) if len(lines) <= room else (lines[:room - 1], lines[room - 1:])
    items = [_line(priced.currency, line.charged, f"Invoice {line.number}{suffix}") for line in shown]
    if folded:
        numbers = ", ".join(line.number for line in folded)
        items.append(_line(priced.currency, sum(line.charged for line in folded),
                           f"Invoices {numbers} ({len(folded)} invoices){suffix}"))
    if priced.adjustment > 0:
        items.append(_line(priced.currency, priced.adjustment, "Card processing fee"))
    return items


def session_params(attempt_id: str, customer_id: str, priced: Quote, webhook: str, ref: str) -> dict[str, Any]:
    """The Checkout Session for one attempt: its method only, the attempt id where every later event finds it."""
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": attempt_id,
        # The current API refuses `payment_method_types`; the customer chose the method on our page (the price
        # depends on it), so the session offers that method only.
        "allowed_payment_method_types": [priced.method],
        "line_items": line_items(priced),
        # Refunds and disputes point at the PaymentIntent: the attempt id must be there, not only on the session.
        "payment_intent_data": {"metadata": {"attempt_id": attempt_id, "customer_id": customer_id[:500]}},
        "metadata": {"attempt_id": attempt_id},
        "success_url": f"{webhook}/pay/done?ref={ref}&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{webhook}/pay/cancelled?ref={ref}",
    }
    if priced.method == "us_bank_account":
        # Instant verification where the bank allows it, microdeposits otherwise: the attempt then waits in
        # `verifying` (no debit yet) until the customer confirms the deposits (docs/payments.md).
        params["payment_method_options"] = {"us_bank_account": {"verification_method": "automatic"}}
    return params
