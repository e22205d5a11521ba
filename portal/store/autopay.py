"""Saved payment methods and autopay: the tables and their queries (the rules are in portal/payments/autopay*.py).

- `stripe_customers`: the one Stripe Customer of each portal customer. Its primary key is the portal customer, so
  a second creation (two tabs) cannot store a second id; the Stripe call itself carries an idempotency key.
- `saved_methods`: the payment methods Stripe attached to that Customer, as its events told us. A method is
  listed once `payment_method.attached` or `setup_intent.succeeded` named it; it may be charged only once the
  setup succeeded (`ready`). Removal is final (`detached_at`): Stripe never re-attaches a detached method, so a
  late `attached` event cannot bring one back.
- `autopay_settings`: what the customer chose (one row per customer): on/off, the method, when (on the due
  date, or N days before), an optional cap per payment.
- `autopay_charges`: one row per invoice and due date autopay took care of: the advance notice, the attempts
  (each a payment attempt of portal/store/payments.py, id `ap_...`), retries and the report to the collector.
  The key (customer, invoice, due date) keeps one run from ever debiting an invoice twice for the same due date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, Integer, String, Table, Text, insert, select, update
from sqlalchemy.engine import Connection

from portal.store.tables import ID, UTCDateTime, metadata

stripe_customers = Table(
    "stripe_customers", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("stripe_customer", String(255), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

saved_methods = Table(
    "saved_methods", metadata,
    Column("method_id", String(255), primary_key=True),  # Stripe's PaymentMethod id (pm_...)
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # card | us_bank_account
    Column("label", String(100), nullable=False, default=""),  # "Visa", "STRIPE TEST BANK"
    Column("last4", String(4), nullable=False, default=""),
    Column("mandate", String(255), nullable=False, default=""),  # the ACH mandate the setup collected
    Column("ready", Boolean, nullable=False, default=False),  # the setup succeeded: off-session charges may use it
    Column("created_at", UTCDateTime, nullable=False),
    Column("detached_at", UTCDateTime, nullable=True),
)

autopay_settings = Table(
    "autopay_settings", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("method_id", String(255), nullable=False),
    Column("days_before", Integer, nullable=False, default=0),  # 0: on the due date
    Column("cap", BigInteger, nullable=True),  # minor units of the invoice's currency; None: no cap
    Column("updated_at", UTCDateTime, nullable=False),
    Column("stopped_reason", Text, nullable=False, default=""),
)

autopay_charges = Table(
    "autopay_charges", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("invoice_id", String(ID), primary_key=True),
    Column("due_date", Date, primary_key=True),
    Column("charge_on", Date, nullable=False),
    Column("state", String(20), nullable=False),  # noticed | charging | charged | failed | needs_customer | reported
    Column("amount", BigInteger, nullable=False, default=0),  # what the notice announced
    Column("noticed_at", UTCDateTime, nullable=True),
    Column("attempt_id", String(64), nullable=False, default=""),
    Column("tries", Integer, nullable=False, default=0),
    Column("next_try_at", UTCDateTime, nullable=True),
    Column("failure", Text, nullable=False, default=""),
    Column("updated_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Method:
    method_id: str
    customer_id: str
    kind: str
    label: str
    last4: str
    mandate: str
    ready: bool
    created_at: datetime
    detached_at: datetime | None


@dataclass(frozen=True)
class Choice:
    customer_id: str
    enabled: bool
    method_id: str
    days_before: int
    cap: int | None
    updated_at: datetime
    stopped_reason: str


@dataclass(frozen=True)
class Charge:
    customer_id: str
    invoice_id: str
    due_date: date
    charge_on: date
    state: str
    amount: int
    noticed_at: datetime | None
    attempt_id: str
    tries: int
    next_try_at: datetime | None
    failure: str
    updated_at: datetime


def _make(cls: type, row: Any) -> Any:
    return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


# --- Stripe customers ----------------------------------------------------------------------------------------


def stripe_customer(conn: Connection, customer_id: str) -> str:
    return conn.execute(select(stripe_customers.c.stripe_customer)
                        .where(stripe_customers.c.customer_id == customer_id)).scalar_one_or_none() or ""


def customer_of_stripe(conn: Connection, stripe_customer_id: str) -> str:
    return conn.execute(select(stripe_customers.c.customer_id)
                        .where(stripe_customers.c.stripe_customer == stripe_customer_id)).scalar_one_or_none() or ""


def save_stripe_customer(conn: Connection, customer_id: str, stripe_customer_id: str, now: datetime) -> str:
    """Store the id unless one is stored already; return the stored one (the first wins)."""
    known = stripe_customer(conn, customer_id)
    if known:
        return known
    conn.execute(insert(stripe_customers).values(customer_id=customer_id, stripe_customer=stripe_customer_id,
                                                 created_at=now))
    return stripe_customer_id


# --- methods -------------------------------------------------------------------------------------------------


def method(conn: Connection, method_id: str, lock: bool = False) -> Method | None:
    query = select(saved_methods).where(saved_methods.c.method_id == method_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return _make(Method, row) if row else None


def methods_of(conn: Connection, customer_id: str) -> list[Method]:
    """The customer's methods not removed, oldest first."""
    rows = conn.execute(select(saved_methods).where(saved_methods.c.customer_id == customer_id,
                                                    saved_methods.c.detached_at.is_(None))
                        .order_by(saved_methods.c.created_at, saved_methods.c.method_id))
    return [_make(Method, r) for r in rows]


def upsert_method(conn: Connection, method_id: str, customer_id: str, now: datetime, **facts: Any) -> None:
    """Add what an event says about a method; never revive a removed one, never un-ready a ready one."""
    known = method(conn, method_id, lock=True)
    if known is None:
        conn.execute(insert(saved_methods).values(
            method_id=method_id, customer_id=customer_id, kind=facts.get("kind", ""), label=facts.get("label", ""),
            last4=facts.get("last4", ""), mandate=facts.get("mandate", ""), ready=bool(facts.get("ready")),
            created_at=now, detached_at=None))
        return
    if known.customer_id != customer_id:
        return  # never moves to another customer
    values = {k: v for k, v in facts.items() if v and k in ("kind", "label", "last4", "mandate")}
    if facts.get("ready"):
        values["ready"] = True
    if values:
        conn.execute(update(saved_methods).where(saved_methods.c.method_id == method_id).values(**values))


def mark_detached(conn: Connection, method_id: str, now: datetime) -> bool:
    """True when the method was listed and is removed now."""
    result = conn.execute(update(saved_methods).where(saved_methods.c.method_id == method_id,
                                                      saved_methods.c.detached_at.is_(None)).values(detached_at=now))
    return result.rowcount > 0


# --- choices -------------------------------------------------------------------------------------------------


def choice(conn: Connection, customer_id: str) -> Choice | None:
    row = conn.execute(select(autopay_settings).where(autopay_settings.c.customer_id == customer_id)).first()
    return _make(Choice, row) if row else None


def all_choices(conn: Connection, enabled_only: bool = True) -> list[Choice]:
    query = select(autopay_settings).order_by(autopay_settings.c.customer_id)
    if enabled_only:
        query = query.where(autopay_settings.c.enabled.is_(True))
    return [_make(Choice, r) for r in conn.execute(query)]


def save_choice(conn: Connection, customer_id: str, now: datetime, **values: Any) -> None:
    values["updated_at"] = now
    if choice(conn, customer_id) is None:
        conn.execute(insert(autopay_settings).values(customer_id=customer_id, **{
            "enabled": False, "method_id": "", "days_before": 0, "cap": None, "stopped_reason": "", **values}))
    else:
        conn.execute(update(autopay_settings).where(autopay_settings.c.customer_id == customer_id).values(**values))


def stop_for_method(conn: Connection, method_id: str, reason: str, now: datetime) -> list[str]:
    """Turn autopay off for whoever used the method; the customers it was on for."""
    ids = list(conn.execute(select(autopay_settings.c.customer_id).where(
        autopay_settings.c.method_id == method_id, autopay_settings.c.enabled.is_(True))).scalars())
    if ids:
        conn.execute(update(autopay_settings).where(autopay_settings.c.customer_id.in_(ids)).values(
            enabled=False, stopped_reason=reason, updated_at=now))
    return ids


# --- charges -------------------------------------------------------------------------------------------------


def charge(conn: Connection, customer_id: str, invoice_id: str, due_date: date, lock: bool = False) -> Charge | None:
    query = select(autopay_charges).where(autopay_charges.c.customer_id == customer_id,
                                          autopay_charges.c.invoice_id == invoice_id,
                                          autopay_charges.c.due_date == due_date)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return _make(Charge, row) if row else None


def charges_of(conn: Connection, customer_id: str) -> list[Charge]:
    rows = conn.execute(select(autopay_charges).where(autopay_charges.c.customer_id == customer_id)
                        .order_by(autopay_charges.c.charge_on, autopay_charges.c.invoice_id))
    return [_make(Charge, r) for r in rows]


def insert_charge(conn: Connection, **values: Any) -> None:
    conn.execute(insert(autopay_charges).values(**values))


def update_charge(conn: Connection, customer_id: str, invoice_id: str, due_date: date, **values: Any) -> None:
    conn.execute(update(autopay_charges).where(autopay_charges.c.customer_id == customer_id,
                                               autopay_charges.c.invoice_id == invoice_id,
                                               autopay_charges.c.due_date == due_date).values(**values))


def enrolled(conn: Connection) -> dict[str, Choice]:
    """Customer id -> their choice, for customers with autopay on (the staff pages)."""
    return {c.customer_id: c for c in all_choices(conn)}


def ready_methods(conn: Connection, customer_id: str) -> list[Method]:
    return [m for m in methods_of(conn, customer_id) if m.ready]


def page_state(conn: Connection, customer_ids: list[str]) -> dict[str, tuple[list[Method], Choice | None]]:
    """What the account pages show of the customers' saved methods and autopay (the build and a refresh)."""
    rows = conn.execute(select(saved_methods).where(saved_methods.c.customer_id.in_(customer_ids),
                                                    saved_methods.c.detached_at.is_(None))
                        .order_by(saved_methods.c.created_at, saved_methods.c.method_id))
    state: dict[str, tuple[list[Method], Choice | None]] = {}
    for row in rows:
        state.setdefault(row.customer_id, ([], None))[0].append(_make(Method, row))
    for row in conn.execute(select(autopay_settings).where(autopay_settings.c.customer_id.in_(customer_ids))):
        state[row.customer_id] = (state.get(row.customer_id, ([], None))[0], _make(Choice, row))
    return state


def enrolled_kinds(conn: Connection, customer_ids: list[str]) -> dict[str, str]:
    """Customer id -> the kind of method autopay debits (card | us_bank_account), for those of `customer_ids` with
    autopay on; one query whatever their number (the staff customers list)."""
    s, m = autopay_settings.c, saved_methods.c
    query = (select(s.customer_id, m.kind)
             .select_from(autopay_settings.join(saved_methods, (m.method_id == s.method_id)
                                                & (m.customer_id == s.customer_id)))
             .where(s.customer_id.in_(sorted(set(customer_ids))), s.enabled))
    return {row.customer_id: row.kind for row in conn.execute(query)}
