"""Stripe's amounts: the minimum charge per currency, and the unit Stripe reads amounts in.

- What Stripe charges must be at least Stripe's minimum charge for the currency: portal.payments.pricing.quote
  checks it before Stripe is called, with a message a customer understands.
- Amounts are sent in the unit Stripe expects: HUF, ISK and UGX are zero-decimal for ISO 4217 (and for us:
  Babel's digits) but Stripe still reads them as two-decimal values, so 1,000 Ft goes as 100000, and amounts
  Stripe reports (refunds) come back divided by 100.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from portal.core.money import digits

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
