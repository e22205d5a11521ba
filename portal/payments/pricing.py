"""Payments: what is open, what a payment would cost, how a payment is applied to its invoices, the emails.

Nothing here knows Flask or Stripe's SDK: the webhook verifies requests and talks to Stripe, then calls
`quote` to price a payment from the store; Stripe's events move attempts in portal.payments.events.

What an invoice owes (its position: DESIGN.md section 4) is portal/balances/position.py's rule: each time an attempt
moves, portal.payments.events has it journal the attempt's money and store the positions it moved, in the
event's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from portal.balances import position
from portal.core.config import Settings
from portal.core.errors import PortalError
from portal.core.money import format_money
from portal.mail.transport import render_message
from portal.payments.checkout import minimum_charge
from portal.store import payments as paystore
from portal.store.database import credits, invoices
from portal.store.payments import Attempt

if TYPE_CHECKING:
    from portal.payments.events import Change

log = logging.getLogger(__name__)

METHODS = {"card": "Card", "us_bank_account": "Bank transfer (ACH)"}
# Statuses in which a payment counts against its invoices (portal/balances/position.py says how much, per state).
COUNTED = position.SETTLING | position.PENDING


class PaymentRefused(PortalError):
    """The payment asked for cannot be made; the message says why, in words for the customer."""


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


@dataclass(frozen=True)
class Payable:
    invoice_id: str
    number: str
    currency: str
    open: int


def quote(settings: Settings, payables: list[Payable], requested: Mapping[str, int | None], method: str,
          credit_notes: Iterable[Payable] = ()) -> Quote:
    """Price a payment of `payables` (what the store says is open), `requested` holding partial amounts
    the customer typed (None: the whole open amount), using the chosen `credit_notes` (their available amounts)
    first. Raises PaymentRefused naming the problem."""
    if method not in METHODS:
        raise PaymentRefused("Please choose how to pay: card or bank transfer.")
    if not payables:
        raise PaymentRefused("Please choose at least one invoice to pay.")
    currencies = {p.currency for p in payables}
    if len(currencies) > 1:
        raise PaymentRefused("Invoices in different currencies must be paid separately.")
    currency = currencies.pop()
    if method == "us_bank_account" and currency != "USD":
        raise PaymentRefused("Bank transfer (ACH) is available for US dollar invoices only.")
    bps = adjustment_bps(settings, method)
    amounts = []
    for p in payables:
        if p.open <= 0:
            raise PaymentRefused(f"Invoice {p.number} is already paid or has a payment pending.")
        amount = requested.get(p.invoice_id)
        if amount is None or amount == p.open:
            amount = p.open
        elif not settings.partial_payments:
            raise PaymentRefused(f"Invoice {p.number} can only be paid in full.")
        elif amount <= 0 or amount > p.open:
            raise PaymentRefused(f"The amount for invoice {p.number} must be more than zero and at most "
                                 "what is open.")
        elif amount < settings.partial_minimum:
            raise PaymentRefused(f"A part payment of invoice {p.number} must be at least the minimum amount.")
        amounts.append((p, amount))
    subtotal = sum(amount for _, amount in amounts)
    # Credits leave at least Stripe's minimum charge to pay online.
    minimum = minimum_charge(currency)
    used, room = [], max(0, subtotal - minimum)
    for c in credit_notes:
        if c.currency != currency:
            raise PaymentRefused(f"Credit note {c.number} is in another currency than the invoices.")
        if c.open <= 0:
            raise PaymentRefused(f"Credit note {c.number} is no longer available.")
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
        raise PaymentRefused(f"The smallest amount our payment provider accepts is {smallest}, and this payment "
                             f"comes to {asked}. Please pay a larger part, or choose another invoice as well.")
    return Quote(currency, method, lines, subtotal, adjustment, total, used)


# --- applying a payment to its invoices (portal.payments.events calls it when a payment first counts) ----------


def _apply_allocations(conn: Any, attempt: Attempt, as_of: datetime | None) -> dict[str, Any]:
    """How much each invoice can still take now that this payment counts; the rest is unapplied cash
    (two tabs paid the same invoice) that staff apply by hand. Never lost, never applied twice."""
    allocations = paystore.allocations_of(conn, attempt.attempt_id)
    epoch = as_of or datetime.min.replace(tzinfo=UTC)
    credit_rows = paystore.credits_of(conn, attempt.attempt_id)
    usable = _usable_credits(conn, attempt.attempt_id, credit_rows, epoch)
    cash = attempt.subtotal - sum(c.amount for c in credit_rows)
    funds = cash + sum(usable.values())
    ids = [a.invoice_id for a in allocations]
    # Lock the invoices (PostgreSQL): two payments of one invoice are applied one after the other.
    rows = {r.invoice_id: r for r in conn.execute(
        select(invoices.c.invoice_id, invoices.c.amount, invoices.c.balance, invoices.c.is_open)
        .where(invoices.c.invoice_id.in_(ids)).with_for_update())}
    # What each invoice owes now, without this payment (which has moved nothing yet: it counts from here on).
    moves = position.entries(conn, invoice_ids=ids, item_kind="invoice")
    applied = {}
    for a in allocations:
        row = rows.get(a.invoice_id)
        open_now = 0 if row is None else position.compute(
            row.amount, row.balance, epoch, moves.get(("invoice", a.invoice_id), ()), is_open=bool(row.is_open)).open
        applied[a.invoice_id] = min(a.amount, open_now, funds)
        funds -= applied[a.invoice_id]
    paystore.set_applied(conn, attempt.attempt_id, applied)
    # Credits are used first, cash after; credit the invoices could not take stays available.
    credit_used = left = min(sum(usable.values()), sum(applied.values()))
    for credit_id in usable:
        usable[credit_id] = min(usable[credit_id], left)
        left -= usable[credit_id]
    paystore.set_applied(conn, attempt.attempt_id, usable, credits=True)
    unapplied = cash - (sum(applied.values()) - credit_used)
    short = credit_used < sum(c.amount for c in credit_rows)
    return {"unapplied": unapplied, "credit_applied": credit_used, "needs_review": unapplied > 0 or short}


def _usable_credits(conn: Any, attempt_id: str, rows: list[Any], epoch: datetime) -> dict[str, int]:
    """How much of each chosen credit is still available (another payment may have used it meanwhile)."""
    if not rows:
        return {}
    ids = [r.credit_id for r in rows]
    notes = {r.credit_id: r for r in conn.execute(select(credits.c.credit_id, credits.c.amount, credits.c.balance)
                                                  .where(credits.c.credit_id.in_(ids)).with_for_update())}
    moves = position.entries(conn, invoice_ids=ids, item_kind="credit")
    return {r.credit_id: min(r.amount, position.compute(
        notes[r.credit_id].amount, notes[r.credit_id].balance, epoch, moves.get(("credit", r.credit_id), ())).open
        if r.credit_id in notes else 0) for r in rows}


# --- messages to the payer --------------------------------------------------------------------------------

MESSAGES = {
    "verifying": ("payment_verify", "Please verify your bank account to finish your payment"),
    "processing": ("payment_pending", "Your bank payment is on its way"),
    "succeeded": ("payment_received", "Payment received, thank you"),
    "failed": ("payment_failed", "Your payment did not go through"),
}


def payment_message(settings: Settings, change: Change, to: tuple[str, str], customer_name: str,
                    account_url: str, standing: Iterable[str] = ()) -> EmailMessage | None:
    """The email for a state change: a pending notice for ACH, the receipt only when the money is there,
    a failure notice; for a bank account that waits for its microdeposits, the link to verify them. None for
    changes the payer is not mailed about (expiry, refunds, disputes). `standing`: where the invoices paid stand
    now (portal.balances.position.standing)."""
    if change.new not in MESSAGES:
        return None
    template, subject = MESSAGES[change.new]
    return render_message(settings, template, to, f"{subject} · {settings.company_name}",
                          customer_name=customer_name, amount_text=format_money(change.amount, change.currency,
                                                                                settings.default_locale),
                          numbers=list(change.numbers), method_text=METHODS.get(change.method, change.method),
                          reason=change.failure_reason, attempt_id=change.attempt_id, account_url=account_url,
                          was_bank=change.method == "us_bank_account", verify_url=change.verify_url,
                          standing=list(standing))
