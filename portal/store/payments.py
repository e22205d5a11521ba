"""Payment tables and their queries: attempts, their invoice allocations, and the Stripe events seen.

The tables live on `portal.store.tables.metadata` (registered for Alembic in portal/store/registry.py) and refer to
customers and invoices by id, like the events table, so payment history survives an invoice leaving the
export. `stripe_events.event_id` is the primary key: a delivery is recorded in the same transaction as its
effect, and a second delivery of the same event fails on that key and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from portal.store.tables import ID, UTCDateTime, metadata

payment_attempts = Table(
    "payment_attempts", metadata,
    Column("attempt_id", String(64), primary_key=True),
    Column("customer_id", String(ID), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("method", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    # What was allocated to invoices, the discount (negative) or fee (positive), and what Stripe charges.
    Column("subtotal", BigInteger, nullable=False),
    Column("adjustment", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    # Cash received that no open invoice could take (two tabs paid the same invoice): staff apply it.
    Column("unapplied", BigInteger, nullable=False, default=0),
    # Available credits the customer chose to use (they reduce what Stripe charges) and what was usable.
    Column("credit_applied", BigInteger, nullable=False, default=0),
    Column("refunded", BigInteger, nullable=False, default=0),
    Column("needs_review", Boolean, nullable=False, default=False),
    Column("payer_email", String(320), nullable=False, default=""),
    Column("checkout_session", String(255), nullable=False, default=""),
    Column("payment_intent", String(255), nullable=False, default="", index=True),
    Column("charge", String(255), nullable=False, default=""),
    Column("failure_reason", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # When the payment first counted against the invoices (processing or succeeded): compared with the
    # export's as_of, it tells whether the ERP balance already includes it.
    Column("counted_at", UTCDateTime, nullable=True),
)

payment_allocations = Table(
    "payment_allocations", metadata,
    Column("attempt_id", String(64), primary_key=True),
    Column("invoice_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("number", String(ID), nullable=False),
    Column("amount", BigInteger, nullable=False),  # what the customer chose to pay on this invoice
    Column("applied", BigInteger, nullable=False, default=0),  # what the invoice could take when it counted
    Index("ix_payment_allocations_invoice_id", "invoice_id"),
)

payment_credits = Table(
    "payment_credits", metadata,
    Column("attempt_id", String(64), primary_key=True),
    Column("credit_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("number", String(ID), nullable=False),
    Column("amount", BigInteger, nullable=False),  # what the customer chose to use of this credit
    Column("applied", BigInteger, nullable=False, default=0),  # what was still available when it counted
    Index("ix_payment_credits_credit_id", "credit_id"),
)

stripe_events = Table(
    "stripe_events", metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("attempt_id", String(64), nullable=False, default=""),
    Column("received_at", UTCDateTime, nullable=False),
)


# The newest snapshot of each Stripe object an event showed (portal.payments.state): the attempt's state is derived
# from them. `attempt_id` is "" for a refund or dispute that arrived before any event told us whose payment
# it is (an orphan): it joins its attempt as soon as one names its PaymentIntent or Charge.
stripe_snapshots = Table(
    "stripe_snapshots", metadata,
    Column("object_id", String(255), primary_key=True),
    Column("attempt_id", String(64), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("intent", String(255), nullable=False, index=True),
    Column("charge", String(255), nullable=False, index=True),
    Column("created", BigInteger, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("data", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Application:
    """One attempt's allocation to one invoice, with the attempt's state (what the balance needs)."""

    attempt_id: str
    invoice_id: str
    status: str
    method: str
    amount: int
    applied: int
    counted_at: datetime | None
    updated_at: datetime
    failure_reason: str


@dataclass(frozen=True)
class Attempt:
    attempt_id: str
    customer_id: str
    status: str
    method: str
    currency: str
    subtotal: int
    adjustment: int
    amount: int
    unapplied: int
    credit_applied: int
    refunded: int
    needs_review: bool
    payer_email: str
    checkout_session: str
    payment_intent: str
    charge: str
    failure_reason: str
    created_at: datetime
    updated_at: datetime
    counted_at: datetime | None


def _attempt(row: Any) -> Attempt:
    return Attempt(**{name: getattr(row, name) for name in Attempt.__dataclass_fields__})


def applications(conn: Connection, customer_ids: Iterable[str] | None = None,
                 invoice_ids: Iterable[str] | None = None, credits: bool = False) -> dict[str, list[Application]]:
    """invoice_id (or, with `credits`, credit_id) -> its allocations of every attempt, oldest attempt first.
    For credits, `Application.invoice_id` holds the credit id."""
    table = payment_credits if credits else payment_allocations
    item = table.c.credit_id if credits else table.c.invoice_id
    query = (select(table.c.attempt_id, item.label("item"), table.c.amount, table.c.applied,
                    payment_attempts.c.status, payment_attempts.c.method, payment_attempts.c.counted_at,
                    payment_attempts.c.updated_at, payment_attempts.c.failure_reason)
             .join(payment_attempts, payment_attempts.c.attempt_id == table.c.attempt_id)
             .order_by(payment_attempts.c.created_at, payment_attempts.c.attempt_id))
    if customer_ids is not None:
        query = query.where(table.c.customer_id.in_(sorted(set(customer_ids))))
    if invoice_ids is not None:
        query = query.where(item.in_(sorted(set(invoice_ids))))
    result: dict[str, list[Application]] = {}
    for r in conn.execute(query):
        result.setdefault(r.item, []).append(Application(
            r.attempt_id, r.item, r.status, r.method, r.amount, r.applied, r.counted_at, r.updated_at,
            r.failure_reason))
    return result


def payment_digests(conn: Connection) -> dict[str, str]:
    """customer_id -> a digest of its attempts' states: a build re-renders a customer when it changes."""
    parts: dict[str, list] = {}
    for r in conn.execute(select(payment_attempts.c.customer_id, payment_attempts.c.attempt_id,
                                 payment_attempts.c.status, payment_attempts.c.updated_at)
                          .order_by(payment_attempts.c.customer_id, payment_attempts.c.attempt_id)):
        parts.setdefault(r.customer_id, []).append((r.attempt_id, r.status, r.updated_at.isoformat()))
    return {cid: hashlib.sha256(repr(p).encode()).hexdigest() for cid, p in parts.items()}


def insert_attempt(conn: Connection, row: dict[str, Any], allocations: list[dict[str, Any]],
                   credits: list[dict[str, Any]] | None = None) -> None:
    conn.execute(insert(payment_attempts).values(**row))
    keys = {"attempt_id": row["attempt_id"], "customer_id": row["customer_id"]}
    conn.execute(insert(payment_allocations), [{**a, **keys} for a in allocations])
    if credits:
        conn.execute(insert(payment_credits), [{**c, **keys} for c in credits])


def get_attempt(conn: Connection, attempt_id: str, lock: bool = False) -> Attempt | None:
    query = select(payment_attempts).where(payment_attempts.c.attempt_id == attempt_id)
    if lock:
        query = query.with_for_update()  # PostgreSQL: two events for one attempt apply one after the other
    row = conn.execute(query).first()
    return None if row is None else _attempt(row)


def attempt_by_intent(conn: Connection, payment_intent: str) -> str | None:
    if not payment_intent:
        return None
    return conn.execute(select(payment_attempts.c.attempt_id)
                        .where(payment_attempts.c.payment_intent == payment_intent)).scalar()


def update_attempt(conn: Connection, attempt_id: str, **values: Any) -> None:
    conn.execute(update(payment_attempts).where(payment_attempts.c.attempt_id == attempt_id).values(**values))


def allocations_of(conn: Connection, attempt_id: str) -> list[Any]:
    return conn.execute(select(payment_allocations).where(payment_allocations.c.attempt_id == attempt_id)
                        .order_by(payment_allocations.c.invoice_id)).all()


def credits_of(conn: Connection, attempt_id: str) -> list[Any]:
    return conn.execute(select(payment_credits).where(payment_credits.c.attempt_id == attempt_id)
                        .order_by(payment_credits.c.credit_id)).all()


def set_applied(conn: Connection, attempt_id: str, applied: dict[str, int], credits: bool = False) -> None:
    table = payment_credits if credits else payment_allocations
    item = table.c.credit_id if credits else table.c.invoice_id
    for item_id, amount in applied.items():
        conn.execute(update(table).where(table.c.attempt_id == attempt_id, item == item_id).values(applied=amount))


def release_applied(conn: Connection, attempt_id: str) -> None:
    for table in (payment_allocations, payment_credits):
        conn.execute(update(table).where(table.c.attempt_id == attempt_id).values(applied=0))


def record_stripe_event(conn: Connection, event_id: str, event_type: str, received_at: datetime) -> None:
    """Insert the event's id; raises IntegrityError when it was already recorded (a duplicate delivery)."""
    conn.execute(insert(stripe_events).values(event_id=event_id, type=event_type, received_at=received_at))


def set_event_attempt(conn: Connection, event_id: str, attempt_id: str) -> None:
    conn.execute(update(stripe_events).where(stripe_events.c.event_id == event_id).values(attempt_id=attempt_id))


def event_seen(conn: Connection, event_id: str) -> bool:
    return conn.execute(select(stripe_events.c.event_id).where(stripe_events.c.event_id == event_id)).first() \
        is not None


def all_attempts(conn: Connection) -> list[Attempt]:
    return [_attempt(r) for r in conn.execute(select(payment_attempts).order_by(payment_attempts.c.created_at,
                                                                                payment_attempts.c.attempt_id))]


def all_allocations(conn: Connection, credits: bool = False) -> dict[str, list[Any]]:
    table = payment_credits if credits else payment_allocations
    item = table.c.credit_id if credits else table.c.invoice_id
    result: dict[str, list[Any]] = {}
    for r in conn.execute(select(table).order_by(table.c.attempt_id, item)):
        result.setdefault(r.attempt_id, []).append(r)
    return result


# --- Stripe object snapshots (portal.payments.state) -----------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One Stripe object as one event showed it (a row of `stripe_snapshots`; portal.payments.state merges them)."""

    object_id: str
    kind: str  # session, intent, charge, dispute
    created: int
    rank: int
    event_id: str
    intent: str = ""  # the PaymentIntent it belongs to, when known
    charge: str = ""  # the Charge it belongs to, when known
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stamp(self) -> tuple[int, int, str]:
        return (self.created, self.rank, self.event_id)


def _snapshot(row: Any) -> Snapshot:
    return Snapshot(row.object_id, row.kind, row.created, row.rank, row.event_id, row.intent, row.charge,
                    json.loads(row.data))


def snapshots_of(conn: Connection, attempt_id: str) -> list[Snapshot]:
    return [_snapshot(r) for r in conn.execute(select(stripe_snapshots)
                                               .where(stripe_snapshots.c.attempt_id == attempt_id))]


def snapshot_by_id(conn: Connection, object_id: str) -> Snapshot | None:
    row = conn.execute(select(stripe_snapshots).where(stripe_snapshots.c.object_id == object_id)).first()
    return None if row is None else _snapshot(row)


def owner_of(conn: Connection, intent: str, charge: str) -> str | None:
    """The attempt a PaymentIntent or Charge belongs to, as earlier events told us."""
    ids = [i for i in (intent, charge) if i]
    if not ids:
        return None
    row = conn.execute(select(payment_attempts.c.attempt_id).where(or_(
        payment_attempts.c.payment_intent.in_(ids), payment_attempts.c.charge.in_(ids))).limit(1)).first()
    if row is not None:
        return row.attempt_id
    return conn.execute(select(stripe_snapshots.c.attempt_id).where(
        stripe_snapshots.c.attempt_id != "",
        or_(stripe_snapshots.c.intent.in_(ids), stripe_snapshots.c.charge.in_(ids))).limit(1)).scalar()


def orphans_for(conn: Connection, ids: set[str]) -> list[Snapshot]:
    ids = {i for i in ids if i}
    if not ids:
        return []
    return [_snapshot(r) for r in conn.execute(select(stripe_snapshots).where(
        stripe_snapshots.c.attempt_id == "",
        or_(stripe_snapshots.c.intent.in_(sorted(ids)), stripe_snapshots.c.charge.in_(sorted(ids)))))]


def save_snapshots(conn: Connection, attempt_id: str, snaps: Iterable[Snapshot], received_at: datetime) -> None:
    """Write the winners of portal.payments.state.merge for `attempt_id` ("" : orphans), replacing older rows."""
    for snap in snaps:
        conn.execute(delete(stripe_snapshots).where(stripe_snapshots.c.object_id == snap.object_id))
        conn.execute(insert(stripe_snapshots).values(
            object_id=snap.object_id, attempt_id=attempt_id, kind=snap.kind, intent=snap.intent, charge=snap.charge,
            created=snap.created, rank=snap.rank, event_id=snap.event_id[:255],
            data=json.dumps(dict(snap.data), sort_keys=True), received_at=received_at))


def prune_orphans(conn: Connection, before: datetime) -> None:
    """Refunds and disputes of payments that never became ours (another integration on the same Stripe
    account) are kept only as long as Stripe may still deliver the events that would claim them."""
    conn.execute(delete(stripe_snapshots).where(stripe_snapshots.c.attempt_id == "",
                                                stripe_snapshots.c.received_at < before))


def lock_stripe_ids(conn: Connection, ids: Iterable[str]) -> None:
    """PostgreSQL: serialise the transactions that look up or claim the same PaymentIntent or Charge, so an
    orphan written by one is seen by the other (each waits for the other's commit). SQLite has one writer."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted({int.from_bytes(hashlib.sha256(f"stripe-object: {i}".encode()).digest()[:8], "big",
                                      signed=True) for i in ids if i}):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
