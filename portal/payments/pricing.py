"""Pricing a payment: the methods, what the customer may be charged for the invoices and credit notes chosen.

`quote` is pure (no store, no network): it takes what the store says is payable and open, and either prices
the payment or raises PaymentRefused in words for the customer. What may be paid at all (this customer's open
invoices, less what disputes hold) is decided before, in portal.payments.start. Money is integer minor units:
a discount or fee is computed in basis points with integer rounding, never through a float.

Guaranteed: the total is at least Stripe's minimum charge for the currency (portal.payments.stripe_amounts),
so Stripe never refuses what the customer was told they could pay; credits are used only as far as they
leave that minimum to pay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from gettext import NullTranslations

from portal.core.config import Settings
from portal.core.errors import PortalError
from portal.core.i18n import N_
from portal.core.money import format_money
from portal.payments.stripe_amounts import minimum_charge

# Labels in English; shown through the customer's translations (portal/core/i18n.py).
METHODS = {"card": N_("Card"), "us_bank_account": N_("Bank transfer (ACH)")}


class PaymentRefused(PortalError):
    """The payment asked for cannot be made; the message says why, in words for the customer. Made from a
    marked English `template` and named `params`, so that the page can say it in the customer's language
    (`text`); `message` is the English, for the logs."""

    def __init__(self, template: str, **params: object):
        super().__init__(template % params if params else template)
        self.template, self.params = template, params

    def text(self, t: NullTranslations) -> str:
        translated = t.gettext(self.template)
        return translated % self.params if self.params else translated


# --- pricing a payment -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuoteLine:
    invoice_id: str
    number: str
    amount: int  # applied to the invoice
    charged: int  # what the line costs on Stripe's page (the amount less its share of a bank discount)


@dataclass(frozen=True)
class QuoteCredit:
    credit_id: str
    number: str
    amount: int


@dataclass(frozen=True)
class Quote:
    currency: str
    method: str
    lines: list[QuoteLine]
    subtotal: int  # allocated to invoices (credits included)
    adjustment: int  # negative: discount for paying by bank; positive: card fee
    total: int  # what Stripe charges: subtotal - credits + adjustment
    credits: list[QuoteCredit] = field(default_factory=list)

    @property
    def credit_total(self) -> int:
        return sum(c.amount for c in self.credits)


def adjustment_bps(settings: Settings, method: str) -> int:
    """Signed basis points: a bank discount is negative, a card fee positive."""
    return -settings.ach_discount_bps if method == "us_bank_account" else settings.card_fee_bps


def _share(amount: int, bps: int) -> int:
    """`amount` x `bps` / 10000, rounded half up, in integers (money never passes through a float)."""
    return (amount * bps + 5000) // 10000


def _part_minimum(settings: Settings, p: Payable) -> int:
    if p.planned and p.plan_asked:
        return min(settings.partial_minimum, p.plan_asked)
    return settings.partial_minimum


@dataclass(frozen=True)
class Payable:
    invoice_id: str
    number: str
    currency: str
    open: int
    planned: bool = False  # on an open payment plan: paid by instalments even when part payments are off
    # What the plan asks for now (portal/balances/instalments.py): an instalment smaller than `partial_minimum`
    # is still payable as it stands, or a customer could never pay what the collector agreed.
    plan_asked: int = 0


def quote(settings: Settings, payables: list[Payable], requested: Mapping[str, int | None], method: str,
          credit_notes: Iterable[Payable] = ()) -> Quote:
    """Price a payment of `payables` (what the store says is open), `requested` holding partial amounts
    the customer typed (None: the whole open amount), using the chosen `credit_notes` (their available amounts)
    first. Raises PaymentRefused naming the problem."""
    if method not in METHODS:
        raise PaymentRefused(N_("Please choose how to pay: card or bank transfer."))
    if not payables:
        raise PaymentRefused(N_("Please choose at least one invoice to pay."))
    currencies = {p.currency for p in payables}
    if len(currencies) > 1:
        raise PaymentRefused(N_("Invoices in different currencies must be paid separately."))
    currency = currencies.pop()
    if method == "us_bank_account" and currency != "USD":
        raise PaymentRefused(N_("Bank transfer (ACH) is available for US dollar invoices only."))
    bps = adjustment_bps(settings, method)
    amounts = []
    for p in payables:
        if p.open <= 0:
            raise PaymentRefused(N_("Invoice %(number)s is already paid or has a payment pending."),
                                 number=p.number)
        amount = requested.get(p.invoice_id)
        if amount is None or amount == p.open:
            amount = p.open
        elif not settings.partial_payments and not p.planned:
            raise PaymentRefused(N_("Invoice %(number)s can only be paid in full."), number=p.number)
        elif amount <= 0 or amount > p.open:
            raise PaymentRefused(N_("The amount for invoice %(number)s must be more than zero and at most "
                                    "what is open."), number=p.number)
        elif amount < _part_minimum(settings, p):
            raise PaymentRefused(N_("A part payment of invoice %(number)s must be at least the minimum amount."),
                                 number=p.number)
        amounts.append((p, amount))
    subtotal = sum(amount for _, amount in amounts)
    # Credits leave at least Stripe's minimum charge to pay online.
    minimum = minimum_charge(currency)
    used, room = [], max(0, subtotal - minimum)
    for c in credit_notes:
        if c.currency != currency:
            raise PaymentRefused(N_("Credit note %(number)s is in another currency than the invoices."),
                                 number=c.number)
        if c.open <= 0:
            raise PaymentRefused(N_("Credit note %(number)s is no longer available."), number=c.number)
        take = min(c.open, room)
        room -= take
        if take:
            used.append(QuoteCredit(c.invoice_id, c.number, take))
    # Credits reduce the invoices' lines in order; a bank discount applies to what is paid by bank, computed
    # on the sum (as the page's script shows it) and spread over the lines in proportion, remainder last.
    left, cash_lines = sum(c.amount for c in used), []
    for p, amount in amounts:
        cut = min(amount, left)
        left -= cut
        cash_lines.append((p, amount, amount - cut))
    cash_total = subtotal - sum(c.amount for c in used)
    adjustment = _share(cash_total, bps) if bps > 0 else -_share(cash_total, -bps)
    discount, lines = (-adjustment if adjustment < 0 else 0), []
    remaining = discount
    for n, (p, amount, cash) in enumerate(cash_lines):
        part = remaining if n == len(cash_lines) - 1 else discount * cash // cash_total if cash_total else 0
        remaining -= part
        lines.append(QuoteLine(p.invoice_id, p.number, amount, cash - part))
    total = cash_total + adjustment
    if total < minimum:
        smallest = format_money(minimum, currency, settings.default_locale)
        asked = format_money(total, currency, settings.default_locale)
        raise PaymentRefused(N_("The smallest amount our payment provider accepts is %(smallest)s, and this payment "
                                "comes to %(asked)s. Please pay a larger part, or choose another invoice as well."),
                             smallest=smallest, asked=asked)
    return Quote(currency, method, lines, subtotal, adjustment, total, used)
