"""Payments: what is open, what a payment would cost, and the attempt's forward-only state machine.

Nothing here knows Flask or Stripe's SDK: the webhook verifies requests and talks to Stripe, then calls
`quote` to price a payment from the store and `apply_event` to move an attempt with a (verified) event.

What an invoice owes (its position: DESIGN.md section 4) is portal/position.py's rule: each time an attempt
moves, `_move` has it journal the attempt's money and store the positions it moved, in the event's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import paystore, position
from .config import Settings
from .errors import PortalError
from .mail import render_message
from .money import format_money
from .paystore import Attempt
from .store import Store, StoreUnavailable, credits, invoices

log = logging.getLogger(__name__)

METHODS = {"card": "Card", "us_bank_account": "Bank transfer (ACH)"}
# Statuses in which a payment counts against its invoices (portal/position.py says how much, per state).
COUNTED = position.SETTLING | position.PENDING
# Forward only: an event can never move an attempt back (events arrive twice and out of order).
TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"processing", "succeeded", "failed", "expired"}),
    "processing": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset({"refunded", "partially_refunded", "disputed"}),
    "partially_refunded": frozenset({"refunded", "disputed"}),
    "disputed": frozenset({"reinstated"}),
    "reinstated": frozenset({"refunded", "partially_refunded"}),
}
# Stripe's ACH failure codes, in words a customer understands.
FAILURE_TEXT = {
    "insufficient_funds": "insufficient funds",
    "account_closed": "the bank account is closed",
    "no_account": "the bank account could not be found",
    "debit_not_authorized": "the bank did not authorise the debit",
    "invalid_account_number": "the account number is not valid",
    "bank_account_restricted": "the bank account does not accept debits",
}


GENERIC_FAILURE = "the bank payment failed"


class PaymentRefused(PortalError):
    """The payment asked for cannot be made; the message says why, in words for the customer."""


def can_move(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


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


# Stripe's smallest charge is 50 cents (USD; similar elsewhere): credits leave at least this much to pay.
MIN_CHARGE = 50


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
    used, room = [], max(0, subtotal - MIN_CHARGE)
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
    return Quote(currency, method, lines, subtotal, adjustment, cash_total + adjustment, used)


# --- events -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one Stripe event asks of an attempt (found by id, or through its PaymentIntent)."""

    attempt_id: str = ""
    intent: str = ""
    status: str = ""  # "" : nothing moves, only facts are recorded
    fields: dict[str, Any] = field(default_factory=dict)


def plan_for(event: Mapping[str, Any]) -> Plan | None:
    """Read one event (parsed JSON). None: an event type this program does not act on."""
    kind = event.get("type", "")
    obj = (event.get("data") or {}).get("object") or {}
    meta = obj.get("metadata") or {}
    if kind.startswith("checkout.session."):
        attempt_id = obj.get("client_reference_id") or meta.get("attempt_id") or ""
        facts = {"checkout_session": obj.get("id") or ""}
        email = (obj.get("customer_details") or {}).get("email") or ""
        if email:
            facts["payer_email"] = email[:320]
        intent = obj.get("payment_intent") or ""
        status = {
            # ACH completes "unpaid": the customer authorised a debit, nothing has arrived yet.
            "checkout.session.completed": "succeeded" if obj.get("payment_status") == "paid" else "processing",
            "checkout.session.async_payment_succeeded": "succeeded",
            "checkout.session.async_payment_failed": "failed",
            "checkout.session.expired": "expired",
        }.get(kind)
        if status is None:
            return None
        if status == "failed":
            facts.setdefault("failure_reason", GENERIC_FAILURE)
        return Plan(attempt_id, intent if isinstance(intent, str) else "", status, facts)
    if kind.startswith("payment_intent."):
        facts = {}
        if obj.get("latest_charge"):
            facts["charge"] = obj["latest_charge"]
        status = {"payment_intent.processing": "processing", "payment_intent.succeeded": "succeeded",
                  "payment_intent.payment_failed": "failed"}.get(kind)
        if status is None:
            return None
        if status == "failed":
            error = obj.get("last_payment_error") or {}
            facts["failure_reason"] = FAILURE_TEXT.get(error.get("code") or "", error.get("message") or
                                                       "the payment failed")
        return Plan(meta.get("attempt_id") or "", obj.get("id") or "", status, facts)
    if kind == "charge.refunded":
        refunded = int(obj.get("amount_refunded") or 0)
        status = "refunded" if refunded >= int(obj.get("amount") or 0) else "partially_refunded"
        return Plan(meta.get("attempt_id") or "", obj.get("payment_intent") or "", status,
                    {"refunded": refunded, "charge": obj.get("id") or ""})
    if kind == "charge.dispute.created":
        return Plan("", obj.get("payment_intent") or "", "disputed",
                    {"failure_reason": f"disputed: {obj.get('reason') or 'no reason given'}"})
    if kind == "charge.dispute.closed":
        # Won: Stripe gives the money back. warning_closed: an inquiry that never became a chargeback (no money
        # was taken). Either way the payment pays its invoices again. Lost: it stays disputed, as it is.
        if obj.get("status") in ("won", "warning_closed"):
            return Plan("", obj.get("payment_intent") or "", "reinstated", {})
        return None
    return None


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


def find_attempt(store: Store, plan: Plan, resolve_intent: Callable[[str], str | None]) -> str | None:
    """The attempt an event is about: by id, by PaymentIntent in the store, else by asking Stripe for the
    PaymentIntent's metadata (refund and dispute events may arrive before we learned the intent id)."""
    if plan.attempt_id:
        return plan.attempt_id
    with store.begin() as conn:
        found = paystore.attempt_by_intent(conn, plan.intent)
    if found is None and plan.intent:
        found = resolve_intent(plan.intent)  # network: never inside a database transaction
    return found


def apply_event(store: Store, event: Mapping[str, Any], resolve_intent: Callable[[str], str | None],
                now: datetime | None = None) -> Change | None:
    """Record the event's id and its effect in ONE transaction. A duplicate (even a concurrent one) fails on
    the id's primary key, rolls back, and returns None: it did nothing."""
    event_id, kind = str(event.get("id") or ""), str(event.get("type") or "")
    if not event_id:
        raise PaymentRefused("an event without an id")
    plan = plan_for(event)
    attempt_id = find_attempt(store, plan, resolve_intent) if plan else None
    now = now or datetime.now(UTC)
    try:
        with store.begin() as conn:
            # First statement of the transaction: a concurrent duplicate waits here, then fails.
            paystore.record_stripe_event(conn, event_id, kind[:100], now)
            if plan is None or attempt_id is None:
                return None
            attempt = paystore.get_attempt(conn, attempt_id, lock=True)
            if attempt is None:
                log.warning("stripe event %s names unknown attempt %s", event_id, attempt_id)
                return None
            paystore.set_event_attempt(conn, event_id, attempt_id)
            return _move(store, conn, attempt, plan, now)
    except StoreUnavailable as exc:
        if isinstance(exc.__cause__, IntegrityError):
            with store.begin() as conn:
                if paystore.event_seen(conn, event_id):
                    return None
        raise


def _move(store: Store, conn: Any, attempt: Attempt, plan: Plan, now: datetime) -> Change | None:
    facts: dict[str, Any] = {}
    if plan.intent and not attempt.payment_intent:
        facts["payment_intent"] = plan.intent
    for key in ("checkout_session", "payer_email", "charge"):
        if plan.fields.get(key) and not getattr(attempt, key):
            facts[key] = plan.fields[key]
    new = plan.status
    # A card declined inside Checkout fails the PaymentIntent, and the customer may retry with another card
    # in the same session: only a bank debit that was accepted and then failed fails the attempt.
    if new == "failed" and attempt.method == "card" and attempt.status == "created":
        new = ""
    moving = bool(new) and can_move(attempt.status, new)
    if moving or (new and new == attempt.status):
        if "refunded" in plan.fields and plan.fields["refunded"] != attempt.refunded:
            facts.update(refunded=plan.fields["refunded"], needs_review=True)
        reason = str(plan.fields.get("failure_reason") or "")[:500]
        # The session's failure event says only "failed"; the PaymentIntent's says why. Whichever comes
        # first, the specific reason wins.
        if new in {"failed", "disputed"} and reason and (moving or attempt.failure_reason in {"", GENERIC_FAILURE}) \
                and reason != GENERIC_FAILURE:
            facts["failure_reason"] = reason
        elif moving and reason:
            facts["failure_reason"] = reason
    if moving:
        facts.update(status=new, updated_at=now)
        if new in COUNTED and attempt.counted_at is None:
            facts.update(_apply_allocations(conn, attempt, store.latest_as_of(conn)), counted_at=now)
        # Staff look at money that went back (refunds, chargebacks) and came back: a reinstated payment may
        # now pay an invoice the customer paid again while it was charged back (then it shows as paid, and
        # the extra cash is staff's to apply or refund).
        if new in {"refunded", "partially_refunded", "disputed", "reinstated"}:
            facts["needs_review"] = True
    if facts:
        paystore.update_attempt(conn, attempt.attempt_id, **facts)
        # What the invoices owe follows the attempt, in this transaction (portal/position.py).
        position.record_change(conn, attempt.attempt_id, now)
    if not moving:
        return None
    store.add_event(conn, f"payment_{new}", attempt.customer_id, detail=attempt.attempt_id)
    numbers = tuple(r.number for r in paystore.allocations_of(conn, attempt.attempt_id))
    return Change(attempt.attempt_id, attempt.customer_id, attempt.status, new, attempt.method, attempt.currency,
                  attempt.amount, facts.get("payer_email") or attempt.payer_email,
                  facts.get("failure_reason", attempt.failure_reason), numbers)


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
    "processing": ("payment_pending", "Your bank payment is on its way"),
    "succeeded": ("payment_received", "Payment received, thank you"),
    "failed": ("payment_failed", "Your payment did not go through"),
}


def payment_message(settings: Settings, change: Change, to: tuple[str, str], customer_name: str,
                    account_url: str, standing: Iterable[str] = ()) -> EmailMessage | None:
    """The email for a state change: a pending notice for ACH, the receipt only when the money is there,
    a failure notice. None for changes the payer is not mailed about (expiry, refunds, disputes). `standing`:
    where the invoices paid stand now (portal.position.standing)."""
    if change.new not in MESSAGES or (change.new == "failed" and change.old != "processing"):
        return None
    template, subject = MESSAGES[change.new]
    return render_message(settings, template, to, f"{subject} · {settings.company_name}",
                          customer_name=customer_name, amount_text=format_money(change.amount, change.currency,
                                                                                settings.default_locale),
                          numbers=list(change.numbers), method_text=METHODS.get(change.method, change.method),
                          reason=change.failure_reason, attempt_id=change.attempt_id, account_url=account_url,
                          was_bank=change.method == "us_bank_account", standing=list(standing))
