"""A bounce on the staff pages, on SQLite and PostgreSQL: the customer's timeline says which address came back
(escaped), and the collector's worklist lists the customer as "Reminder returned undeliverable"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from portal.store import tables
from portal.store.mail import Bounce, record_bounce
from tests.staff_helpers import add_staff, login
from tests.webhook_helpers import import_sample, make_app

CARA = "cara@example.com"
HOSTILE = "<b>ann</b>@c1.example"


@pytest.fixture
def first(store, settings, export_dir):
    ledger = import_sample(store, settings, export_dir)
    first = sorted(ledger.customers)[0]
    contact = next(c for c in ledger.contacts if c.customer_id == first)
    with store.begin() as conn:  # an address as hostile as an export may hold
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == first).values(collector=CARA))
        conn.execute(update(tables.contacts).where(tables.contacts.c.customer_id == first,
                                                   tables.contacts.c.contact_id == contact.contact_id)
                     .values(email=HOSTILE))
        now = datetime.now(UTC)
        record_bounce(conn, Bounce("<m1@supplier.example>", HOSTILE, first, contact.contact_id, "reminder", "5.1.1",
                                   "user unknown", "dsn", now), now)
    return first


def test_the_timeline_and_the_worklist_show_the_bounced_address_escaped(settings, store, tmp_path, first):
    add_staff(store, CARA, "collector")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        client = app.test_client()
        assert login(client, CARA).status_code == 302
        timeline = client.get(f"/staff/customer?id={first}").get_data(as_text=True)
        assert "Email returned undeliverable" in timeline
        assert "&lt;b&gt;ann&lt;/b&gt;@c1.example 5.1.1 reminder &lt;m1@supplier.example&gt;" in timeline
        assert HOSTILE not in timeline
        worklist = client.get("/staff/worklist").get_data(as_text=True)
        assert "Reminder returned undeliverable" in worklist and "reminder to &lt;b&gt;ann&lt;/b&gt;" in worklist
        assert HOSTILE not in worklist
