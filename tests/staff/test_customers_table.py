"""Customers for staff (portal/staff/customers_table.py): search, the timeline and its CSV export, and the customer
page's data."""

from __future__ import annotations

import pytest

from portal.core.errors import NotFound
from portal.staff.customers_table import (
    customer_page,
    customer_positions,
    customer_timeline,
    customers_search,
    timeline_csv,
)
from tests.staff_helpers import parse_csv


def test_timeline_and_customer_search(store, ledger):
    customer = sorted(ledger.customers)[0]
    found, page = customer_timeline(store, customer, per_page=3)
    assert found["customer_id"] == customer and found["name"] == ledger.customers[customer].name
    assert page.total == store.count_events(customer_id=customer) > 3 and len(page.rows) == 3
    everything = customer_timeline(store, customer, per_page=500)[1].rows
    keys = [(r["occurred_at"], r["event_id"]) for r in everything]
    assert keys == sorted(keys, reverse=True)  # newest first
    numbers = {i.invoice_id: i.number for i in ledger.invoices.values()}
    assert all(r["number"] == numbers.get(r["invoice_id"], "") for r in everything)
    assert any(r["invoice_id"] == "" and r["detail"] == "account" for r in everything)
    exported = parse_csv(timeline_csv(store, customer))
    assert [int(e["event_id"]) for e in exported] == [r["event_id"] for r in everything]
    assert exported[0]["occurred_at"].endswith("Z")
    missing, empty = customer_timeline(store, "nobody")
    assert missing is None and empty.total == 0 and empty.rows == []

    assert [c["customer_id"] for c in customers_search(store, customer)][0] == customer
    name_part = ledger.customers[customer].name.split()[0][:3].lower()
    assert customer in [c["customer_id"] for c in customers_search(store, name_part, limit=100)]
    assert customers_search(store, "  ") == []
    assert len(customers_search(store, "c0", limit=3)) == 3  # id prefix, case-insensitive


def test_the_customer_page_narrows_to_one_invoice_and_is_none_for_an_unknown_customer(store, ledger):
    """What the view used to filter itself: with `invoice_id`, only that invoice's events and its position."""
    customer = sorted(ledger.customers)[0]
    mine = sorted(i.invoice_id for i in ledger.invoices.values() if i.customer_id == customer)
    whole = customer_page(store, customer)
    assert whole.customer["customer_id"] == customer
    assert [p["invoice_id"] for p in whole.positions] == [p["invoice_id"] for p in customer_positions(store, customer)]
    assert len(whole.positions) == len(mine) > 1 and whole.timeline.total == store.count_events(customer_id=customer)
    one = customer_page(store, customer, invoice_id=mine[0])
    assert [p["invoice_id"] for p in one.positions] == [mine[0]]
    assert {r["invoice_id"] for r in one.timeline.rows} <= {mine[0]}
    assert one.timeline.total == store.count_events(customer_id=customer, invoice_id=mine[0])
    other = next(c for c in sorted(ledger.customers) if c != customer)
    stranger = next(i.invoice_id for i in ledger.invoices.values() if i.customer_id == other)
    assert customer_page(store, customer, invoice_id=stranger).positions == []  # another customer's invoice
    assert customer_page(store, "nobody") is None


def test_the_timeline_export_of_an_unknown_customer_is_refused_before_anything_streams(store, ledger):
    with pytest.raises(NotFound):
        timeline_csv(store, "nobody")
