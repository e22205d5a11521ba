"""A payment plan on the customer's pages (SQLite and PostgreSQL): the invoice page and the account page list
the instalments with their states in the customer's language, and the pay form is pre-filled with what is due
now, computed from the store (the server checks any amount typed against the store as before)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from portal.build.customer import render_customer
from portal.build.pages import PageRenderer, invoice_slug
from portal.collect.access import Actor
from portal.collect.plans import Proposal, make_plan
from portal.store import tables
from tests.smtpserver import changed, mail_ledger

CARA = Actor("cara@supplier.example", "collector")
NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def ledger(store, tmp_path):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    return ledger


def _pages(settings, store, customer_id="C1"):
    rendered = render_customer(PageRenderer(settings), store, customer_id)
    found = {o.path: o.data.decode() for o in rendered.outputs if o.path.endswith(".html")}
    account = next(v for k, v in found.items() if k.endswith("/index.html"))
    invoice = next(v for k, v in found.items() if k.endswith(f"/i/{invoice_slug('I-OD20')}.html"))
    return account, invoice


def test_the_pages_show_the_plan_and_the_pay_form_asks_for_the_instalment_due(store, ledger, settings):
    make_plan(store, CARA, "C1", Proposal("I-OD20", "weekly", TODAY.isoformat(), "4"), now=NOW)
    account, invoice = _pages(settings, store)
    for page in (account, invoice):
        assert "Payment plan for invoice INV-OD20&lt;i&gt;" in page
        assert "You pay $400.00 in 4 instalments." in page
        assert page.count('class="instalment instalment-due"') == 1
        assert page.count('class="instalment instalment-upcoming"') == 3
    assert 'name="amount-I-OD20" placeholder="400.00" value="100.00"' in invoice  # instalment 1, due today
    assert 'name="amount-I-OD5" placeholder="300.00" autocomplete' in account  # no plan: nothing pre-filled
    # The ERP booked 150.00: instalment 1 is paid, and what instalment 2 still needs is asked for.
    store.import_snapshot(changed(ledger, "I-OD20", balance=25000))
    _, invoice = _pages(settings, store)
    assert invoice.count('class="instalment instalment-paid"') == 1
    assert 'value="50.00"' in invoice and f"(the instalment of {(TODAY + timedelta(days=7)).strftime('%b')}" in invoice


def test_a_german_customer_reads_the_plan_in_german(store, ledger, settings):
    with store.begin() as conn:
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == "C1").values(locale="de_DE"))
    make_plan(store, CARA, "C1", Proposal("I-OD20", "weekly", TODAY.isoformat(), "4"), now=NOW)
    _, invoice = _pages(settings, store)
    assert "Zahlungsplan für Rechnung INV-OD20&lt;i&gt;" in invoice and "Noch nicht fällig" in invoice
    assert 'value="100,00"' in invoice
