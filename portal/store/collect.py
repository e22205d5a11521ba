"""The collector's workbench tables: touches (calls, emails, notes, the portal's own emails) and holds.

The queries stay with the workbench (portal/collect/); three live here because layers below the workbench need
them: `record_portal_touch` (the mail features record their messages as touches in the same transaction as
the `email_sent` events, so a touch exists exactly when a message left), `held_customers` (reminders skip a
customer on hold) and `promised_invoices` (reminders pause for a promised invoice until its day).

A touch names its collector when it is written: the staff user who logged it, or for the portal's own emails
the customer's collector at sending time, so a later reassignment does not move past work between collectors.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Index, Integer, Select, String, Table, Text, func, insert, select
from sqlalchemy.engine import Connection

from portal.store.tables import ID, UTCDateTime, customers, metadata

TOUCH_ID = BigInteger().with_variant(Integer, "sqlite")

touches = Table(
    "touches", metadata,
    Column("touch_id", TOUCH_ID, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False),
    # call | email | note (logged by staff) | portal_email (the portal's own messages)
    Column("kind", String(20), nullable=False),
    Column("outcome", String(20), nullable=False, default=""),  # calls: reached | voicemail | no_answer | wrong_number
    Column("body", Text, nullable=False, default=""),
    Column("collector", String(320), nullable=False, default=""),  # whose touch it counts as ("" when nobody's)
    Column("created_by", String(320), nullable=False, default=""),  # the staff user; "" for the portal
    Column("contact_id", String(320), nullable=False, default=""),
    Column("occurred_at", UTCDateTime, nullable=False),
    Index("ix_touches_customer_id_occurred_at", "customer_id", "occurred_at"),
    Index("ix_touches_collector_occurred_at", "collector", "occurred_at"),
)

# Each customer's latest touch by staff (a call, email, note, promise or answer): what marks a worklist item done.
# Kept by a database trigger on `touches` (migration 0013_worklist_facts), so bulk loads keep it too; the worklist
# joins it instead of probing the touches once per item (11,000 probes for the team's list, bench/workbench.py).
last_staff_touches = Table(
    "last_staff_touches", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("touched_at", UTCDateTime, nullable=False),
)

# The invoices a touch was about (none: the whole account).
touch_invoices = Table(
    "touch_invoices", metadata,
    Column("touch_id", TOUCH_ID, primary_key=True),
    Column("invoice_id", String(ID), primary_key=True),
    Index("ix_touch_invoices_invoice_id", "invoice_id"),
)

# One row per hold ever placed; the current one has no released_at and an end date not yet passed.
holds = Table(
    "holds", metadata,
    Column("hold_id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False),
    Column("reason", Text, nullable=False),
    Column("until", Date, nullable=False),  # the last day of the hold
    Column("placed_by", String(320), nullable=False),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("released_by", String(320), nullable=False, default=""),
    Column("released_at", UTCDateTime, nullable=True),
    Index("ix_holds_customer_id_released_at", "customer_id", "released_at"),
)

# Promises to pay (portal/collect/promises.py). `status`: open -> kept | broken | cancelled, each once.
promises = Table(
    "promises", metadata,
    Column("promise_id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units of `currency`
    Column("currency", String(3), nullable=False),
    Column("promised_for", Date, nullable=False),  # the day the money is promised by
    Column("source", String(10), nullable=False),  # collector | customer
    Column("made_by", String(320), nullable=False),  # the staff user, or the customer's contact ("" unknown)
    Column("collector", String(320), nullable=False, default=""),  # whose promise it counts as
    Column("status", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime, nullable=True),  # when it was judged kept, broken or cancelled
    Column("arrived", BigInteger, nullable=False, default=0),  # money that arrived, as last judged
    Index("ix_promises_status_promised_for", "status", "promised_for"),
    Index("ix_promises_customer_id", "customer_id"),
)

# Each promised invoice with what it still owed (open + pending, per the balances rule) when promised: the
# money that arrived since is that less what it still owes.
promise_invoices = Table(
    "promise_invoices", metadata,
    Column("promise_id", Integer, primary_key=True),
    Column("invoice_id", String(ID), primary_key=True),
    Column("unsettled_at_promise", BigInteger, nullable=False),
    Index("ix_promise_invoices_invoice_id", "invoice_id"),
)

# Answers to customers' questions (portal/collect/answers.py): one per question, written once the transport
# accepted the message.
question_answers = Table(
    "question_answers", metadata,
    Column("question_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("customer_id", String(ID), nullable=False),
    Column("answer", Text, nullable=False),
    Column("answered_by", String(320), nullable=False),
    Column("answered_at", UTCDateTime, nullable=False),
    Column("sent_to", Text, nullable=False),  # the addresses it went to, comma-separated
    Column("message_id", Text, nullable=False),
)

# A manager's reassignment of a customer: wins over the export's `collector` column, which every import rewrites.
collector_assignments = Table(
    "collector_assignments", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("collector", String(320), nullable=False),
    Column("assigned_by", String(320), nullable=False),
    Column("assigned_at", UTCDateTime, nullable=False),
)

# A worklist item put off: the customer's item for `reason` stays off the worklist through `until`.
worklist_snoozes = Table(
    "worklist_snoozes", metadata,
    Column("customer_id", String(ID), primary_key=True),
    Column("reason", String(30), primary_key=True),
    Column("until", Date, nullable=False),
    Column("snoozed_by", String(320), nullable=False),
    Column("snoozed_at", UTCDateTime, nullable=False),
)


def collector_of() -> Any:
    """The customer's collector as a column: a manager's reassignment, else the export's (lower case). Select
    from `with_assignments(customers)`."""
    return func.lower(func.coalesce(collector_assignments.c.collector, customers.c.collector))


def with_assignments(table: Any) -> Any:
    return table.outerjoin(collector_assignments, collector_assignments.c.customer_id == customers.c.customer_id)


def of_customers(column: Any, customer_ids: Iterable[str] | Select) -> Any:
    """`column IN customer_ids`, given a list of ids (sent sorted, each once) or a subquery of them (a portfolio,
    left to the database: 2,500 ids as parameters cost more to send than the query to answer)."""
    return column.in_(customer_ids if isinstance(customer_ids, Select) else sorted(set(customer_ids)))


def insert_touch(conn: Connection, row: dict, invoice_ids: Iterable[str] = ()) -> int:
    touch_id = conn.execute(insert(touches).values(**row).returning(touches.c.touch_id)).scalar_one()
    ids = sorted(set(invoice_ids))
    if ids:
        conn.execute(insert(touch_invoices), [{"touch_id": touch_id, "invoice_id": i} for i in ids])
    return int(touch_id)


def record_portal_touch(conn: Connection, customer_id: str, contact_id: str, invoice_ids: Iterable[str], what: str,
                        message_id: str, at: datetime) -> int:
    """One touch for one message the portal sent to a contact, counted for the customer's collector now."""
    collector = conn.execute(select(collector_of()).select_from(with_assignments(customers))
                             .where(customers.c.customer_id == customer_id)).scalar()
    return insert_touch(conn, {"customer_id": customer_id, "kind": "portal_email", "outcome": "",
                               "body": f"{what} {message_id}".strip(), "collector": collector or "",
                               "created_by": "", "contact_id": contact_id, "occurred_at": at}, invoice_ids)


def promised_invoices(conn: Connection, today: date) -> dict[str, date]:
    """invoice id -> the day it is promised by, for open promises whose day has not passed: reminders pause."""
    query = (select(promise_invoices.c.invoice_id, promises.c.promised_for)
             .select_from(promises.join(promise_invoices, promise_invoices.c.promise_id == promises.c.promise_id))
             .where(promises.c.status == "open", promises.c.promised_for >= today))
    found: dict[str, date] = {}
    for invoice_id, day in conn.execute(query):
        found[invoice_id] = max(day, found.get(invoice_id, day))
    return found


def held_customers(conn: Connection, today: date) -> set[str]:
    """The customers on hold today (a hold ends after its `until` day or when released)."""
    query = select(holds.c.customer_id).where(holds.c.released_at.is_(None), holds.c.until >= today).distinct()
    return set(conn.execute(query).scalars())
