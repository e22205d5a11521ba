"""AP address changes the customer asked for on its page, and how they sit on top of the ERP export's contacts.

A change is `requested` until its address confirms (the link mailed to it, the only mail a typed address gets
before then), then `confirmed`: from then on it is part of the customer's contacts wherever the store hands them
out (`Store.customer_data`: `portal send`, reminders, fresh links), added or replacing the contact it names.

The ERP export stays the source of truth (docs/contacts.md): the team copies the confirmed changes into the ERP
(`portal report contact-changes`), and the first import whose contacts carry the new address for that customer
marks the change `in_erp` (`absorb`, in the import's transaction). From then on the export alone decides, so a
later export that drops the address drops it here too. Until then a confirmed change keeps applying on top of
every import, so no import quietly sends invoices back to an address the customer said is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, Table, insert, select, update
from sqlalchemy.engine import Connection

from portal.export.model import Contact
from portal.store.tables import ID, UTCDateTime, metadata

REQUESTED, CONFIRMED, IN_ERP = "requested", "confirmed", "in_erp"

contact_changes = Table(
    "contact_changes", metadata,
    Column("change_id", String(64), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("kind", String(10), nullable=False),  # "add" or "replace"
    Column("replaces", String(ID), nullable=False, default=""),  # the contact id replaced ("" for an add)
    Column("replaces_email", String(320), nullable=False, default=""),  # its address then, for the ERP export
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("status", String(20), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("in_erp_at", UTCDateTime, nullable=True),
    Index("ix_contact_changes_customer_id", "customer_id"),
)


@dataclass(frozen=True)
class ContactChange:
    change_id: str
    customer_id: str
    kind: str
    replaces: str
    replaces_email: str
    email: str
    name: str
    status: str
    requested_at: datetime
    confirmed_at: datetime | None
    in_erp_at: datetime | None


def _change(row: Any) -> ContactChange:
    return ContactChange(**{name: getattr(row, name) for name in ContactChange.__dataclass_fields__})


def add_request(conn: Connection, **row: Any) -> None:
    conn.execute(insert(contact_changes).values(status=REQUESTED, **row))


def get(conn: Connection, change_id: str) -> ContactChange | None:
    row = conn.execute(select(contact_changes).where(contact_changes.c.change_id == change_id)).first()
    return None if row is None else _change(row)


def confirm(conn: Connection, change_id: str, at: datetime) -> bool:
    """Confirm a requested change; False when it was not waiting (confirmed already, or unknown). One guarded
    statement: two clicks of the link confirm once."""
    c = contact_changes.c
    done = conn.execute(update(contact_changes).where(c.change_id == change_id, c.status == REQUESTED)
                        .values(status=CONFIRMED, confirmed_at=at))
    return done.rowcount == 1


def changes(conn: Connection, customer_ids: Iterable[str] | None = None, statuses: Iterable[str] | None = None
            ) -> list[ContactChange]:
    """Changes, oldest first (the order they apply in)."""
    c = contact_changes.c
    query = select(contact_changes).order_by(c.requested_at, c.change_id)
    if customer_ids is not None:
        query = query.where(c.customer_id.in_(sorted(set(customer_ids))))
    if statuses is not None:
        query = query.where(c.status.in_(sorted(set(statuses))))
    return [_change(r) for r in conn.execute(query)]


def by_customer(conn: Connection, customer_ids: Iterable[str] | None) -> dict[str, list[ContactChange]]:
    """customer id -> its confirmed changes, in the order they apply (of every customer when None)."""
    found: dict[str, list[ContactChange]] = {}
    for change in changes(conn, customer_ids, [CONFIRMED]):
        found.setdefault(change.customer_id, []).append(change)
    return found


def overlay(exported: list[Contact], confirmed: Iterable[ContactChange]) -> list[Contact]:
    """A customer's contacts: the export's, with its confirmed changes applied in order. A new address takes its
    own address as contact id (the export's default), so when the ERP later lists it under that id, what was
    sent to it is recognised and not sent again."""
    result = list(exported)
    listed = {c.email.lower() for c in exported}
    for change in confirmed:
        # The export lists the address already: the import that brings it marks the change in_erp (`absorb`), and
        # from then on the export alone decides. A build rendering that export before its import commits
        # (portal/store/snapshotview.py) sees the same contacts this way.
        if change.email.lower() in listed:
            continue
        if change.kind == "replace":
            result = [c for c in result if c.contact_id != change.replaces]
        if not any(c.email.lower() == change.email.lower() for c in result):
            result.append(Contact(change.customer_id, change.email, change.email, change.name, "billing"))
    return result


def absorb(conn: Connection, exported: Iterable[Contact], at: datetime) -> None:
    """In an import's transaction: confirmed changes whose address the new export lists for their customer are
    in the ERP now; the export decides about them from here on."""
    listed = {(c.customer_id, c.email.lower()) for c in exported}
    c = contact_changes.c
    for change in changes(conn, statuses=[CONFIRMED]):
        if (change.customer_id, change.email.lower()) in listed:
            conn.execute(update(contact_changes).where(c.change_id == change.change_id)
                         .values(status=IN_ERP, in_erp_at=at))
