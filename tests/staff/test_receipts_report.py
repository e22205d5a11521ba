"""The receipts report (portal/staff/receipts_report.py): each receipt kind counted on its own, the unopened filter,
closed invoices only with events, one query at any size, and the same rows in every format."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from portal.export.reader import read_export
from portal.staff.exports import to_csv, to_json
from portal.staff.receipts_report import RECEIPT_COLUMNS, format_rows, format_table, receipts
from portal.store import tables
from tests.conftest import AS_OF
from tests.staff_helpers import approve_invoice


@pytest.fixture
def ledger(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    # Pin first_seen_at so the unopened filter is about the test's clock, not the machine's.
    with store.begin() as conn:
        conn.execute(update(tables.invoices).values(first_seen_at=AS_OF - timedelta(days=20)))
    return ledger


def _first_two(ledger):
    invoices = sorted(ledger.invoices.values(), key=lambda i: i.invoice_id)
    return invoices[0], next(i for i in invoices if i.customer_id != invoices[0].customer_id)


def test_receipts_count_each_kind_separately(store, ledger):
    a, b = _first_two(ledger)
    t0 = AS_OF - timedelta(days=10)
    store.record_event("email_sent", a.customer_id, occurred_at=t0, contact_id="x", invoice_id=a.invoice_id)
    for hours in (1, 2, 3):  # a scanner and the person fetch the link
        store.record_event("link_opened", a.customer_id, occurred_at=t0 + timedelta(hours=hours),
                           invoice_id=a.invoice_id)
    store.record_event("page_viewed", a.customer_id, occurred_at=t0 + timedelta(hours=5), invoice_id=a.invoice_id)
    store.record_event("page_viewed", a.customer_id, occurred_at=t0 + timedelta(days=2), invoice_id=a.invoice_id)
    store.record_event("document_viewed", a.customer_id, occurred_at=t0 + timedelta(days=2),
                       invoice_id=a.invoice_id, document_id=f"invoice:{a.invoice_id}")
    # Account page viewed once: counted apart, never as a view of the invoice itself.
    store.record_event("page_viewed", a.customer_id, occurred_at=t0, detail="account")
    # The same invoice id under another customer must not leak into A's row.
    store.record_event("page_viewed", b.customer_id, occurred_at=t0, invoice_id=a.invoice_id)

    rows = {r["invoice_id"]: r for r in receipts(store, now=AS_OF)}
    assert set(rows) == set(ledger.invoices)
    row = rows[a.invoice_id]
    assert set(RECEIPT_COLUMNS) <= set(row)
    assert (row["emails_sent"], row["link_opened"], row["page_viewed"], row["documents_viewed"],
            row["account_viewed"]) == (1, 3, 2, 1, 1)
    assert row["first_opened_at"] == (t0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert row["first_viewed_at"] == (t0 + timedelta(hours=5)).isoformat().replace("+00:00", "Z")
    assert row["last_viewed_at"] == (t0 + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    assert row["number"] == a.number and row["customer_id"] == a.customer_id
    untouched = rows[b.invoice_id]
    assert (untouched["emails_sent"], untouched["page_viewed"], untouched["first_viewed_at"]) == (0, 0, None)


def test_an_approved_invoice_says_when_and_by_whom_in_every_format(store, ledger, settings):
    a, b = _first_two(ledger)
    approve_invoice(store, settings, a.customer_id, a.invoice_id, "approver@customer.example",
                    now=AS_OF - timedelta(days=2))
    approve_invoice(store, settings, a.customer_id, a.invoice_id, "second@customer.example", now=AS_OF)
    rows = {r["invoice_id"]: r for r in receipts(store, now=AS_OF)}
    assert (rows[a.invoice_id]["approved_at"], rows[a.invoice_id]["approved_by"]) == (
        (AS_OF - timedelta(days=2)).isoformat().replace("+00:00", "Z"), "approver@customer.example")  # the first
    assert (rows[b.invoice_id]["approved_at"], rows[b.invoice_id]["approved_by"]) == (None, None)
    parsed = {p["invoice_id"]: p for p in csv.DictReader(io.StringIO(format_rows(list(rows.values()), "csv")))}
    assert parsed[a.invoice_id]["approved_by"] == "approver@customer.example"
    assert parsed[b.invoice_id]["approved_at"] == ""
    line = next(x for x in format_table([rows[a.invoice_id]]).splitlines() if a.number in x)
    assert line.endswith((AS_OF - timedelta(days=2)).strftime("%Y-%m-%d %H:%M"))


def test_unopened_filter_uses_first_email_or_first_seen(store, ledger):
    a, b = _first_two(ledger)
    others = [i for i in ledger.invoices.values() if i.invoice_id not in {a.invoice_id, b.invoice_id}]
    recent = others[0]
    # A: mailed 10 days ago, fetched by a scanner only: still unopened.
    store.record_event("email_sent", a.customer_id, occurred_at=AS_OF - timedelta(days=10), invoice_id=a.invoice_id)
    store.record_event("link_opened", a.customer_id, occurred_at=AS_OF - timedelta(days=9), invoice_id=a.invoice_id)
    # B: mailed 10 days ago and viewed by a person: opened.
    store.record_event("email_sent", b.customer_id, occurred_at=AS_OF - timedelta(days=10), invoice_id=b.invoice_id)
    store.record_event("page_viewed", b.customer_id, occurred_at=AS_OF - timedelta(days=8), invoice_id=b.invoice_id)
    # Recent: mailed yesterday (first_seen_at is older, but the email decides).
    store.record_event("email_sent", recent.customer_id, occurred_at=AS_OF - timedelta(days=1),
                       invoice_id=recent.invoice_id)

    unopened = {r["invoice_id"] for r in receipts(store, unopened_days=7, now=AS_OF)}
    assert a.invoice_id in unopened
    assert b.invoice_id not in unopened and recent.invoice_id not in unopened
    # Never mailed: first_seen_at (20 days ago) counts.
    assert others[1].invoice_id in unopened
    assert receipts(store, unopened_days=30, now=AS_OF) == []


def test_closed_invoices_are_kept_only_with_events(store, ledger, settings):
    a, b = _first_two(ledger)
    store.record_event("page_viewed", a.customer_id, occurred_at=AS_OF - timedelta(days=3), invoice_id=a.invoice_id)
    smaller = replace(ledger, invoices={k: v for k, v in ledger.invoices.items()
                                        if k not in {a.invoice_id, b.invoice_id}})
    store.import_snapshot(smaller)
    rows = {r["invoice_id"]: r for r in receipts(store, now=AS_OF)}
    assert rows[a.invoice_id]["is_open"] is False and rows[a.invoice_id]["page_viewed"] == 1
    assert b.invoice_id not in rows
    # A closed invoice is never "unopened": nobody chases a paid invoice.
    assert a.invoice_id not in {r["invoice_id"] for r in receipts(store, unopened_days=0, now=AS_OF)}


def test_receipts_is_one_query_whatever_the_size(store, ledger):
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        rows = receipts(store, now=AS_OF)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(rows) == len(ledger.invoices) > 10
    assert len(statements) == 1


def test_formats_carry_the_same_rows(store, ledger):
    a, _ = _first_two(ledger)
    store.record_event("page_viewed", a.customer_id, occurred_at=AS_OF, invoice_id=a.invoice_id)
    rows = receipts(store, now=AS_OF)
    assert json.loads(to_json(rows)) == rows
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows, RECEIPT_COLUMNS))))
    assert [p["invoice_id"] for p in parsed] == [r["invoice_id"] for r in rows]
    assert list(parsed[0]) == RECEIPT_COLUMNS
    table = format_table(rows)
    assert "Viewed" in table and "mail security scanner" in table and a.number in table
    assert format_rows(rows, "csv") == to_csv(rows, RECEIPT_COLUMNS)
    with pytest.raises(ValueError):
        format_rows(rows, "xml")
