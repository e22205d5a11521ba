"""The customer's autopay choice, and which invoices autopay may take (docs/autopay.md).

Guarantees:
- Only the verified customer's own saved, verified (`ready`) method can be chosen; another customer's method, a
  removed one or a made-up id is refused in the same words, which reveal nothing.
- The cap is parsed as money of the customer's currency (integer minor units); the timing is "on the due date" or
  1-30 days before it.
- `eligible` is the one rule of what autopay may debit: an open invoice whose position (portal/balances) asks for
  money (`ASKABLE`: not paid, not pending, not in dispute), with nothing held by a dispute, not blocked by the
  collector (`collector_blocks`), within the cap. The amount is always the position's `due`, never anything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from portal.balances import position, rule
from portal.core.errors import CustomerRefusal
from portal.core.i18n import N_
from portal.core.money import AmountError, parse_amount
from portal.store import autopay as apstore
from portal.store import collect, plans
from portal.store.database import Store
from portal.store.tables import customers, invoices

MAX_DAYS_BEFORE = 30


class AutopayRefused(CustomerRefusal):
    """A choice that cannot be saved; the message is the customer's (shown in the customer's language: `text`)."""

    exit_code = 2


def choose(store: Store, customer_id: str, method_id: str, timing: str, days_text: str, cap_text: str,
           now: datetime | None = None) -> apstore.Choice:
    """Turn autopay on (or change it) for the verified customer. Raises AutopayRefused, saving nothing."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        found = apstore.method(conn, method_id[:255])
        if found is None or found.customer_id != customer_id or found.detached_at is not None:
            raise AutopayRefused(N_("This payment method is not saved on your account."))
        if not found.ready:
            raise AutopayRefused(N_("This payment method is not verified yet. Please try again in a few minutes."))
        currency = conn.execute(select(customers.c.currency).where(customers.c.customer_id == customer_id)
                                ).scalar_one_or_none() or "USD"
        if found.kind == "us_bank_account" and currency != "USD":
            raise AutopayRefused(N_("A US bank account can pay invoices in US dollars only."))
        if timing == "due":
            days = 0
        elif timing == "before":
            try:
                days = int(days_text.strip())
            except ValueError:
                days = -1
            if not 1 <= days <= MAX_DAYS_BEFORE:
                raise AutopayRefused(N_("Please enter a number of days between 1 and %(max)d."), max=MAX_DAYS_BEFORE)
        else:
            raise AutopayRefused(N_("Please choose when invoices are paid."))
        cap = None
        if cap_text.strip():
            try:
                cap = parse_amount(cap_text.strip(), currency)
            except (AmountError, ValueError):
                raise AutopayRefused(N_("The largest amount is not a valid amount.")) from None
            if cap <= 0:
                raise AutopayRefused(N_("The largest amount must be more than zero."))
        apstore.save_choice(conn, customer_id, now, enabled=True, method_id=found.method_id, days_before=days,
                            cap=cap, stopped_reason="")
        store.add_event(conn, "autopay_on", customer_id, detail=found.method_id)
        return apstore.choice(conn, customer_id)  # type: ignore[return-value]


def turn_off(store: Store, customer_id: str, now: datetime | None = None) -> None:
    """The customer turns autopay off: nothing is debited from now on (a debit already sent to the bank runs on)."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        if apstore.choice(conn, customer_id) is not None:
            apstore.save_choice(conn, customer_id, now, enabled=False, stopped_reason="turned off by the customer")
            store.add_event(conn, "autopay_off", customer_id)


def collector_blocks(conn: Any, customer_id: str, invoice_ids: Iterable[str], today: date) -> dict[str, str]:
    """The invoices autopay must leave alone today because of the collector's workbench (portal/collect), with why:
    every invoice of a customer on hold (a hold stops every request for money, as it stops the reminders), and an
    invoice with an open promise to pay whose day has not passed (the customer said when they will pay; a broken
    promise no longer blocks), and an invoice on an open payment plan (the customer pays it by instalments, not
    in one charge of its whole `due`). Read through the store's queries (portal/store/collect.py), the same ones the
    reminders use. Disputes and pending payments are already kept out by the position (`eligible`)."""
    ids = set(invoice_ids)
    if customer_id in collect.held_customers(conn, today):
        return dict.fromkeys(ids, "on hold")
    promised = collect.promised_invoices(conn, today)
    planned = plans.planned_invoices(conn)
    return {**{i: "on a payment plan" for i in ids if i in planned},
            **{i: f"promised to pay by {promised[i].isoformat()}" for i in ids if i in promised}}


@dataclass(frozen=True)
class Due:
    """An invoice autopay is to pay: the position's `due`, on `charge_on`."""

    invoice_id: str
    number: str
    currency: str
    due_date: date
    charge_on: date
    amount: int


def eligible(conn: Any, choice: apstore.Choice, today: date) -> tuple[list[Due], list[tuple[str, str]]]:
    """The customer's invoices autopay is to pay (with their charge day, any day from today on), and those it
    leaves (number, why). The amount is each invoice's `due` as the balances rule says now."""
    rows = list(conn.execute(select(invoices).where(invoices.c.customer_id == choice.customer_id,
                                                    invoices.c.is_open.is_(True)).order_by(invoices.c.due_date,
                                                                                           invoices.c.number)))
    standing = position.of_invoices(conn, [r.invoice_id for r in rows])
    blocked = collector_blocks(conn, choice.customer_id, [r.invoice_id for r in rows], today)
    method = apstore.method(conn, choice.method_id)
    result, left = [], []
    for row in rows:
        pos = standing[row.invoice_id]
        if pos.status not in rule.ASKABLE or pos.due <= 0:
            continue  # paid, pending, in dispute or closed: nothing to ask for
        if pos.disputed > 0:
            left.append((row.number, "in dispute"))
            continue
        if row.invoice_id in blocked:
            left.append((row.number, blocked[row.invoice_id]))
            continue
        if method is not None and method.kind == "us_bank_account" and row.currency != "USD":
            left.append((row.number, "not in US dollars"))
            continue
        if choice.cap is not None and pos.due > choice.cap:
            left.append((row.number, "above the largest amount chosen"))
            continue
        result.append(Due(row.invoice_id, row.number, row.currency, row.due_date,
                          row.due_date - timedelta(days=choice.days_before), pos.due))
    return result, left
