"""Stripe Checkout's limits and the Checkout Session the portal asks for, in Stripe's units.

Guaranteed here, so that Stripe never refuses what the customer was told they could pay:
- A session has at most 100 line items (Stripe's limit in `payment` mode), the card-fee line included: past
  that, the last invoices share one line (the allocation per invoice stays in our database).
- What Stripe charges is at least Stripe's minimum charge for the currency (checked by `portal.payments.service.quote`
  before Stripe is called, with a message a customer understands).
- Amounts are sent in the unit Stripe expects: HUF, ISK and UGX are zero-decimal for ISO 4217 (and for us:
  Babel's digits) but Stripe still reads them as two-decimal values, so 1,000 Ft goes as 100000.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from portal.core.money import digits

if TYPE_CHECKING:
    from portal.payments.service import Quote

MAX_LINE_ITEMS = 100

# Stripe's minimum charge per settlement currency, in major units ("Minimum and maximum charge amounts",
# docs.stripe.com/currencies, checked 2026-12). A charge in another currency must reach the equivalent of the
# account's settlement currency after conversion: we cannot know the rate, so such currencies are checked
# only for being above zero and Stripe's refusal (`amount_too_small`) is turned into the same message.
MINIMUM_CHARGE: dict[str, Decimal] = {
    "USD": Decimal("0.50"), "AED": Decimal("2.00"), "AUD": Decimal("0.50"), "BGN": Decimal("1.00"),
    "BRL": Decimal("0.50"), "CAD": Decimal("0.50"), "CHF": Decimal("0.50"), "CZK": Decimal("15.00"),
    "DKK": Decimal("2.50"), "EUR": Decimal("0.50"), "GBP": Decimal("0.30"), "HKD": Decimal("4.00"),
    "HUF": Decimal("175.00"), "INR": Decimal("0.50"), "JPY": Decimal("50"), "MXN": Decimal("10"),
    "MYR": Decimal("2"), "NOK": Decimal("3.00"), "NZD": Decimal("0.50"), "PLN": Decimal("2.00"),
    "RON": Decimal("2.00"), "SEK": Decimal("3.00"), "SGD": Decimal("0.50"), "THB": Decimal("10"),
}

# Zero-decimal currencies that Stripe's API still reads as two-decimal amounts (docs.stripe.com/currencies,
# "special cases"); TWD is two-decimal for us and for Stripe's charges alike.
_STRIPE_TWO_DECIMAL = frozenset({"HUF", "ISK", "UGX"})


def minimum_charge(currency: str) -> int:
    """Stripe's minimum charge in our minor units (rounded up), 1 where Stripe lists none."""
    major = MINIMUM_CHARGE.get(currency.upper())
    if major is None:
        return 1
    return int(major.scaleb(digits(currency)).to_integral_value(rounding=ROUND_CEILING))


def _scale(currency: str) -> int:
    return 100 if currency.upper() in _STRIPE_TWO_DECIMAL and digits(currency) == 0 else 1


def to_stripe(minor: int, currency: str) -> int:
    """Our minor units -> the `amount`/`unit_amount` Stripe expects for `currency`."""
    return minor * _scale(currency)


def from_stripe(amount: int, currency: str) -> int:
    """An amount in Stripe's unit (e.g. a charge's `amount_refunded`) -> our minor units."""
    return int(amount) // _scale(currency)


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
