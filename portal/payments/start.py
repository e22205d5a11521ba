"""Starting a payment: what this customer may pay of what they chose, priced, recorded as an attempt.

The webhook's /pay checks the signed page token, reads the form and calls `start_payment`; nothing the browser
sends is trusted but the customer id the token carries. Guaranteed here, in one transaction:
- only this customer's invoices and credit notes are paid; another customer's (or none at all) is refused in
  the same words, which reveal nothing;
- what may be paid is the invoice's `due` (portal/balances/position.py: open less what unresolved disputes
  hold): a stale page or a hand-made form cannot pay what the customer disputes, nor what is paid or pending;
- every amount is recomputed from the store (portal.payments.pricing.quote) and the attempt is recorded with
  its allocations (status `created`, which counts nowhere) before Stripe is called; a refusal records nothing.

The refusals' words are the customer's (PaymentRefused.message) and their order is part of the behaviour:
the dispute holds are named first, then the form's size, then ownership, then the amounts (docs/payments.md,
docs/disputes.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from portal.balances import instalments, journal, position, rule
from portal.core.config import Settings
from portal.core.i18n import N_
from portal.core.money import AmountError, format_money, input_amount, parse_typed_amount
from portal.payments.pricing import Payable, PaymentRefused, Quote, quote
from portal.store import payments as paystore
from portal.store.database import Store
from portal.store.disputes import disputed_amounts
from portal.store.plans import StoredPlan, open_plans
from portal.store.tables import credits, invoices

# Invoices (and credit notes) one payment may name: a bound on the form. Checkout's 100 line items are kept by
# portal.payments.checkout.line_items, which folds the last invoices into one line when the card fee needs one.
MAX_INVOICES = 100


@dataclass(frozen=True)
class Started:
    """A recorded attempt (status `created`) and its price: what the Checkout Session is made from."""

    attempt_id: str
    quote: Quote


def start_payment(store: Store, settings: Settings, customer_id: str, chosen: Sequence[str],
                  typed: Mapping[str, str], credit_ids: Sequence[str], method: str,
                  now: datetime | None = None, locale: str = "") -> Started:
    """Price a payment of the invoices `chosen` (ids, in the form's order, without repeats) by the verified
    customer `customer_id`, with the part amounts `typed` (invoice id -> the text typed; blank: what is due)
    and the credit notes `credit_ids`, by `method`; record it as an attempt with its allocations. Amounts are
    read in the dot form or the customer's `locale`'s (portal.core.money.parse_typed_amount).
    Raises PaymentRefused, having recorded nothing."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        payables, requested = payable_invoices(conn, customer_id, chosen, typed, locale, now.date())
        available = _available_credits(conn, customer_id, credit_ids)
        priced = quote(settings, payables, requested, method, available)
        attempt_id = "pa_" + secrets.token_hex(12)
        paystore.insert_attempt(conn, {
            "attempt_id": attempt_id, "customer_id": customer_id, "status": "created", "method": method,
            "currency": priced.currency, "subtotal": priced.subtotal, "adjustment": priced.adjustment,
            "amount": priced.total, "unapplied": 0, "credit_applied": 0, "refunded": 0, "needs_review": False,
            "payer_email": "", "checkout_session": "", "payment_intent": "", "charge": "", "failure_reason": "",
            "created_at": now, "updated_at": now, "counted_at": None,
        }, [{"invoice_id": line.invoice_id, "number": line.number, "amount": line.amount, "applied": 0}
            for line in priced.lines],
            [{"credit_id": c.credit_id, "number": c.number, "amount": c.amount, "applied": 0} for c in priced.credits])
    return Started(attempt_id, priced)


def _plan_asked(plan: StoredPlan | None, now: rule.Position, today: date) -> int:
    """What the invoice's open plan asks for today (0 without a plan): the pay form's pre-filled amount."""
    if plan is None:
        return 0
    got = instalments.arrived(plan.unsettled_at_plan, now)
    # The grace days only tell a missed instalment from a due one; what is asked for does not depend on them.
    return instalments.state(plan.instalments, plan.total, got, now, today, 0).asked


def payable_invoices(conn: Any, customer_id: str, chosen: Sequence[str], typed: Mapping[str, str], locale: str = "",
                     today: date | None = None) -> tuple[list[Payable], dict[str, int]]:
    """What may be paid of the invoices `chosen`: each as a Payable whose `open` is its `due` (open less what
    unresolved disputes hold), and the part amounts typed, parsed. Raises PaymentRefused for a held amount
    asked for, too many invoices, another customer's invoice, a closed one, or an amount that is not one."""
    rows = {r.invoice_id: r for r in conn.execute(
        select(invoices).where(invoices.c.customer_id == customer_id, invoices.c.invoice_id.in_(list(chosen))))}
    standing = position.of_invoices(conn, list(rows))
    _refuse_held(conn, customer_id, chosen, typed, rows, standing, locale)
    if len(chosen) > MAX_INVOICES:
        raise PaymentRefused(N_("At most %(max)d invoices can be paid at once."), max=MAX_INVOICES)
    for invoice_id in chosen:
        row = rows.get(invoice_id)
        if row is None:
            # Another customer's invoice, or none at all: the same words, nothing revealed.
            raise PaymentRefused(N_("One of the chosen invoices is not on your account."))
        if not row.is_open:
            raise PaymentRefused(N_("Invoice %(number)s is no longer open."), number=row.number)
    planned = open_plans(conn, [customer_id])
    payables = [Payable(i, rows[i].number, rows[i].currency, standing[i].due, i in planned,
                        _plan_asked(planned.get(i), standing[i], today or datetime.now(UTC).date()))
                for i in chosen]
    requested = {}
    for p in payables:
        text = typed.get(p.invoice_id, "").strip()
        if text:
            try:
                requested[p.invoice_id] = parse_typed_amount(text, p.currency, locale)
            except (AmountError, ValueError):
                raise PaymentRefused(N_("The amount for invoice %(number)s is not a valid amount: write it like "
                                        "%(example)s."), number=p.number,
                                     example=input_amount(123450, p.currency, locale)) from None
    return payables, requested


def _refuse_held(conn: Any, customer_id: str, chosen: Sequence[str], typed: Mapping[str, str],
                 rows: Mapping[str, Any], standing: Mapping[str, rule.Position], locale: str = "") -> None:
    """An invoice an unresolved dispute holds (even in part) is paid only by an amount typed within its `due`:
    the page pre-fills that amount, so a blank or larger one comes from a stale page or a hand-made form."""
    held = disputed_amounts(conn, customer_ids=[customer_id], invoice_ids=chosen)
    for invoice_id in held:
        row = rows.get(invoice_id)
        if row is None:
            continue
        payable = standing[invoice_id].due
        text = typed.get(invoice_id, "").strip()
        if payable <= 0:
            raise PaymentRefused(N_("Invoice %(number)s is in dispute in full: it can be paid once the dispute "
                                    "is resolved."), number=row.number)
        most = format_money(payable, row.currency, locale or "en_US")
        if not text:
            raise PaymentRefused(N_("Part of invoice %(number)s is in dispute: enter an amount of at most "
                                    "%(amount)s."), number=row.number, amount=most)
        try:
            too_much = parse_typed_amount(text, row.currency, locale) > payable
        except (AmountError, ValueError):
            too_much = False  # payable_invoices names a malformed amount itself
        if too_much:
            raise PaymentRefused(N_("Part of invoice %(number)s is in dispute: at most %(amount)s can be paid now."),
                                 number=row.number, amount=most)


def _available_credits(conn: Any, customer_id: str, credit_ids: Sequence[str]) -> list[Payable]:
    """The credit notes chosen, each with what it still has available; another customer's is refused."""
    found = {r.credit_id: r for r in conn.execute(
        select(credits).where(credits.c.customer_id == customer_id, credits.c.credit_id.in_(list(credit_ids))))}
    if len(found) != len(credit_ids):
        raise PaymentRefused(N_("One of the chosen credit notes is not on your account."))
    as_of = position.latest_as_of(conn)
    used = journal.entries(conn, invoice_ids=list(credit_ids), item_kind="credit")
    return [Payable(c, found[c].number, found[c].currency, rule.compute(
        found[c].amount, found[c].balance, as_of, used.get(("credit", c), ())).open) for c in credit_ids]


def checkout_opened(store: Store, attempt_id: str, session_id: str) -> None:
    """Stripe made the attempt's Checkout Session: its id, where the session's events find the attempt too."""
    with store.begin() as conn:
        paystore.update_attempt(conn, attempt_id, checkout_session=session_id)


def checkout_failed(store: Store, attempt_id: str, now: datetime | None = None) -> None:
    """Stripe could not make the session: the attempt never started and must not count anywhere."""
    with store.begin() as conn:
        paystore.update_attempt(conn, attempt_id, status="expired", updated_at=now or datetime.now(UTC),
                                failure_reason="checkout could not be started")
