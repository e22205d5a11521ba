"""The receipts table (portal/staff/receipts_table.py): rows that agree with the receipts report, filters, every
sort both ways, pagination, and a CSV export that matches the database, byte for byte the same from PostgreSQL's
ready-made lines as from Python."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from portal.balances import stored
from portal.core.money import to_decimal
from portal.staff import csvcells, receiptlines, receipts_report
from portal.staff.receipts_table import RECEIPT_COLUMNS, RECEIPT_SORT_NAMES, ReceiptFilter, receipts_csv, receipts_page
from portal.store import tables
from tests.conftest import AS_OF
from tests.staff_helpers import approve_invoice, parse_csv

NOW = AS_OF


def all_rows(store, flt=None, **kw):
    page = receipts_page(store, flt, per_page=500, now=NOW, **kw)
    assert page.total == len(page.rows)
    return page.rows


def test_receipts_rows_agree_with_the_receipts_report(store, ledger, settings):
    approved = ledger.invoices[sorted(ledger.invoices)[3]]
    approve_invoice(store, settings, approved.customer_id, approved.invoice_id, "ap.boss@customer.example",
                    now=NOW - timedelta(hours=5))
    rows = {r["invoice_id"]: r for r in all_rows(store)}
    expected = {r["invoice_id"]: r for r in receipts_report.receipts(store, now=NOW)}
    assert set(rows) == set(expected) == set(ledger.invoices)
    for invoice_id, row in rows.items():
        want = expected[invoice_id]
        for key in ("customer_id", "customer_name", "number", "is_open", "currency", "amount", "balance",
                    "emails_sent", "link_opened", "page_viewed", "documents_viewed"):
            assert row[key] == want[key], (invoice_id, key)
        for key in ("first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at", "approved_at"):
            assert csvcells.iso_utc(row[key]) == want[key], (invoice_id, key)
        assert row["approved_by"] == want["approved_by"], invoice_id
        assert row["due_date"].isoformat() == want["due_date"]
        customer = ledger.customers[row["customer_id"]]
        assert (row["group_name"], row["collector"]) == (customer.group, customer.collector)
        assert row["days_overdue"] == max(0, (NOW.date() - row["due_date"]).days)
    assert set(rows[next(iter(rows))]) == set(RECEIPT_COLUMNS)
    assert (rows[approved.invoice_id]["approved_at"], rows[approved.invoice_id]["approved_by"]) == (
        NOW - timedelta(hours=5), "ap.boss@customer.example")
    assert sum(1 for r in rows.values() if r["approved_at"] is not None) == 1


@pytest.mark.parametrize("sort", RECEIPT_SORT_NAMES)
def test_every_sort_orders_both_ways_and_pages_are_stable(store, ledger, sort):
    for descending in (False, True):
        rows = all_rows(store, sort=sort, descending=descending)
        key = "due_date" if sort == "days_overdue" else sort
        values = [r[key] for r in rows if r[key] is not None]
        if sort in {"customer_name", "group_name", "collector", "number", "customer_id", "invoice_id", "currency"}:
            values = [v for v in values if v.isascii()]  # collations agree on ASCII only
            values = [v.lower() for v in values] if sort == "customer_name" else values
        if sort == "days_overdue":
            descending_values = not descending
        else:
            descending_values = descending
        # Names sort by the database's collation: byte order on SQLite (checked exactly, case and all); on
        # PostgreSQL a locale's rules that no Python sort reproduces, so only the other columns are checked.
        if sort != "customer_name" or store.engine.dialect.name == "sqlite":
            raw = [r[key] for r in rows if r[key] is not None and (sort != "customer_name" or r[key].isascii())]
            assert (values if sort != "customer_name" else raw) == sorted(
                values if sort != "customer_name" else raw, reverse=descending_values), sort
        nulls = [r[key] is None for r in rows]
        assert nulls == sorted(nulls), "NULLs come last"
        # Pages of 7 put together are the whole list, in the same order, without duplicates.
        paged = []
        first = receipts_page(store, sort=sort, descending=descending, per_page=7, now=NOW)
        for n in range(1, first.pages + 1):
            paged += receipts_page(store, sort=sort, descending=descending, page=n, per_page=7, now=NOW).rows
        assert [r["invoice_id"] for r in paged] == [r["invoice_id"] for r in rows]


def test_pagination_boundaries(store, ledger):
    total = len(ledger.invoices)
    page = receipts_page(store, per_page=25, now=NOW)
    assert (page.total, page.pages, len(page.rows)) == (total, 3, 25)
    last = receipts_page(store, page=3, per_page=25, now=NOW)
    assert len(last.rows) == total - 50
    beyond = receipts_page(store, page=4, per_page=25, now=NOW)
    assert beyond.rows == [] and beyond.total == total
    exact = receipts_page(store, per_page=total, now=NOW)
    assert exact.pages == 1 and len(exact.rows) == total
    for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 10_000}):
        with pytest.raises(ValueError):
            receipts_page(store, now=NOW, **bad)


def test_filters(store, ledger):
    rows = all_rows(store)
    unopened = {r["invoice_id"] for r in all_rows(store, ReceiptFilter(unopened_days=7))}
    assert unopened == {r["invoice_id"] for r in receipts_report.receipts(store, unopened_days=7, now=NOW)}
    assert 0 < len(unopened) < len(rows)
    assert {r["invoice_id"] for r in all_rows(store, ReceiptFilter(min_amount=50000))} == \
        {r["invoice_id"] for r in rows if r["balance"] >= 50000}
    assert {r["invoice_id"] for r in all_rows(store, ReceiptFilter(min_amount=1000, max_amount=50000))} == \
        {r["invoice_id"] for r in rows if 1000 <= r["balance"] <= 50000}
    group = rows[0]["group_name"]
    assert {r["invoice_id"] for r in all_rows(store, ReceiptFilter(group=group))} == \
        {r["invoice_id"] for r in rows if r["group_name"] == group}
    collector = rows[0]["collector"]
    assert {r["invoice_id"] for r in all_rows(store, ReceiptFilter(collector=collector.upper()))} == \
        {r["invoice_id"] for r in rows if r["collector"] == collector}
    customer = rows[0]["customer_id"]
    by_id = {r["invoice_id"] for r in all_rows(store, ReceiptFilter(customer=customer))}
    assert by_id == {r["invoice_id"] for r in rows if r["customer_id"] == customer}
    word = rows[0]["customer_name"].split()[0]
    assert {r["invoice_id"] for r in all_rows(store, ReceiptFilter(customer=word.upper()[:4]))} >= by_id
    assert {r["invoice_id"] for r in all_rows(store, ReceiptFilter(currency="eur"))} == \
        {r["invoice_id"] for r in rows if r["currency"] == "EUR"}
    assert all_rows(store, ReceiptFilter(customer="%")) == []  # LIKE wildcards are escaped


def test_closed_invoices_only_when_asked_and_only_with_events(store, ledger):
    rows = {r["invoice_id"]: r for r in all_rows(store)}
    with_events = next(i for i, r in rows.items() if r["page_viewed"])
    without = next(i for i, r in rows.items() if not (r["emails_sent"] or r["link_opened"] or r["page_viewed"]
                                                     or r["documents_viewed"]))
    store.import_snapshot(replace(ledger, invoices={k: v for k, v in ledger.invoices.items()
                                                    if k not in {with_events, without}}))
    assert {with_events, without}.isdisjoint({r["invoice_id"] for r in all_rows(store)})
    closed = {r["invoice_id"]: r for r in all_rows(store, ReceiptFilter(include_closed=True))}
    assert with_events in closed and without not in closed and closed[with_events]["is_open"] is False
    assert closed[with_events]["days_overdue"] == 0


def test_receipts_csv_matches_the_database(store, ledger):
    flt = ReceiptFilter(unopened_days=3)
    exported = parse_csv(receipts_csv(store, flt, "balance", True, now=NOW))
    rows = all_rows(store, flt, sort="balance", descending=True)
    assert [e["invoice_id"] for e in exported] == [r["invoice_id"] for r in rows]
    # Straight from the tables: balances in major units, times in UTC with Z.
    with store.begin() as conn:
        db = {r.invoice_id: r for r in conn.execute(select(tables.invoices))}
    for e in exported:
        inv = db[e["invoice_id"]]
        assert e["balance"] == str(to_decimal(inv.balance, inv.currency))
        assert e["amount"] == str(to_decimal(inv.amount, inv.currency))
        assert e["due_date"] == inv.due_date.isoformat() and e["number"] == inv.number
    everything = parse_csv(receipts_csv(store, now=NOW))
    assert len(everything) == len(ledger.invoices)
    report = {r["invoice_id"]: r for r in receipts_report.receipts(store, now=NOW)}
    for e in everything:
        want = report[e["invoice_id"]]
        assert (e["page_viewed"], e["link_opened"], e["first_viewed_at"] or None) == (
            str(want["page_viewed"]), str(want["link_opened"]), want["first_viewed_at"])
        assert e["is_open"] == "true"
    assert list(everything[0]) == RECEIPT_COLUMNS


def test_csv_cells_cannot_run_as_formulas(store, ledger):
    customer = sorted(ledger.customers)[0]
    with store.begin() as conn:
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == customer)
                     .values(name='=HYPERLINK("http://evil.example","x")', collector="@boss"))
    receiptlines.rebuild(store)  # edited by hand, not by an import: the export's lines follow
    exported = [e for e in parse_csv(receipts_csv(store, ReceiptFilter(customer=customer), now=NOW))]
    assert exported and all(e["customer_name"] == "'=HYPERLINK(\"http://evil.example\",\"x\")" for e in exported)
    assert all(e["collector"] == "'@boss" for e in exported)
    assert csvcells.csv_cell("-12.50") == "-12.50" and csvcells.csv_cell("-1+2") == "'-1+2"
    assert csvcells.csv_cell("\tx") == "'\tx" and csvcells.csv_cell(None) == "" and csvcells.csv_cell(True) == "true"


def test_postgresql_copy_export_is_byte_for_byte_the_python_export(store, ledger, settings):
    """PostgreSQL writes the big export itself (COPY); its cells must be exactly the Python path's."""
    ids = sorted(ledger.customers)
    names = ['Comma, Inc.', 'Quote "Q" Ltd', "Line\nbreak", "CR\r\nLF and\rCR", "=1+2", "-12.50", "\tTabbed",
             "Ünïcødé ☃ GmbH"]
    others = ["-x", "+44 1", "@handle", " Leading space", "\\.", "", "\r", "1,5"]
    with store.begin() as conn:
        for cid, name, other in zip(ids, names, others, strict=True):
            conn.execute(update(tables.customers).where(tables.customers.c.customer_id == cid)
                         .values(name=name, group_name=other, collector=other[::-1]))
        invoice_ids = sorted(ledger.invoices)
        for n, (currency, amount) in enumerate([("JPY", 12345), ("BHD", 1005), ("USD", 5), ("USD", 0),
                                                 ("EUR", 100000000001)]):
            conn.execute(update(tables.invoices).where(tables.invoices.c.invoice_id == invoice_ids[n])
                         .values(currency=currency, amount=amount, balance=amount, number=f"=N{n}"))
    stored.rebuild(store)  # edited by hand, not by an import: the stored positions follow, then the lines
    receiptlines.rebuild(store)
    inv = ledger.invoices[invoice_ids[0]]
    store.record_event("page_viewed", inv.customer_id, invoice_id=inv.invoice_id,
                       occurred_at=AS_OF.replace(microsecond=0))  # whole seconds: no fraction in ISO 8601
    store.record_event("page_viewed", inv.customer_id, invoice_id=inv.invoice_id,
                       occurred_at=AS_OF.replace(microsecond=120))
    # Approved: at a whole second and by an address a spreadsheet would run; at a fraction by a quoted one.
    approve_invoice(store, settings, inv.customer_id, inv.invoice_id, "=cmd|x@customer.example",
                    now=AS_OF.replace(microsecond=0))
    other = ledger.invoices[invoice_ids[4]]
    approve_invoice(store, settings, other.customer_id, other.invoice_id, "a.b+ap@customer.example",
                    now=AS_OF.replace(microsecond=5000))
    for flt, sort, descending in ((ReceiptFilter(), "due_date", False),
                                  (ReceiptFilter(include_closed=True), "customer_name", True),
                                  (ReceiptFilter(unopened_days=5, min_amount=1), "last_viewed_at", False)):
        fast = "".join(receipts_csv(store, flt, sort, descending, now=NOW))
        slow = "".join(receipts_csv(store, flt, sort, descending, now=NOW, copy=False))
        assert fast == slow
    exported = {e["invoice_id"]: e for e in parse_csv(receipts_csv(store, now=NOW))}
    assert exported[invoice_ids[0]]["amount"] == "12345" and exported[invoice_ids[1]]["amount"] == "1.005"
    assert exported[invoice_ids[2]]["amount"] == "0.05" and exported[invoice_ids[3]]["balance"] == "0.00"
    assert exported[invoice_ids[0]]["number"] == "'=N0"
    assert exported[invoice_ids[0]]["first_viewed_at"] == AS_OF.replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")
    assert exported[invoice_ids[0]]["last_viewed_at"].endswith(".000120Z")
    assert (exported[invoice_ids[0]]["approved_at"], exported[invoice_ids[0]]["approved_by"]) == (
        AS_OF.replace(microsecond=0).isoformat().replace("+00:00", "Z"), "'=cmd|x@customer.example")
    assert exported[invoice_ids[4]]["approved_at"].endswith(".005000Z")
    by_customer = {e["customer_id"]: e["customer_name"] for e in exported.values()}
    assert by_customer[ids[3]] == "CR\nLF and\nCR" and by_customer[ids[5]] == "-12.50"
    assert by_customer[ids[4]] == "'=1+2" and by_customer[ids[6]] == "'\tTabbed"
    groups = {e["customer_id"]: (e["group_name"], e["collector"]) for e in exported.values()}
    assert groups[ids[0]] == ("'-x", "x-") and groups[ids[6]] == ("'\n", "'\n")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # COPY is the PostgreSQL path
@pytest.mark.parametrize("datestyle", ["SQL, DMY", "German", "Postgres, MDY"])
def test_copy_export_writes_times_and_dates_alike_whatever_the_servers_datestyle(store, ledger, datestyle):
    """COPY writes dates and timestamps from their text form, which DateStyle shapes; a server or role may set
    another one. Fractions with trailing zeros (PostgreSQL drops them) come out with six digits, as in Python."""
    assert store.engine.dialect.name == "postgresql"
    inv = ledger.invoices[sorted(ledger.invoices)[0]]
    for kind, micro in (("email_sent", 500000), ("link_opened", 999999), ("page_viewed", 10), ("page_viewed", 0)):
        store.record_event(kind, inv.customer_id, invoice_id=inv.invoice_id,
                           occurred_at=AS_OF.replace(microsecond=micro) - timedelta(days=1 if micro else 0))
    with store.begin() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE {store.engine.url.database} SET DateStyle = '{datestyle}'")
    store.engine.dispose()
    receiptlines.rebuild(store)  # the export's lines formatted under that DateStyle (the tails: by the refresh)
    fast = "".join(receipts_csv(store, now=NOW))
    assert fast == "".join(receipts_csv(store, now=NOW, copy=False))
    [row] = [e for e in parse_csv(fast) if e["invoice_id"] == inv.invoice_id]
    assert (row["first_sent_at"], row["first_opened_at"], row["last_viewed_at"]) == (
        (AS_OF - timedelta(days=1)).replace(microsecond=500000).isoformat().replace("+00:00", "Z"),
        (AS_OF - timedelta(days=1)).replace(microsecond=999999).isoformat().replace("+00:00", "Z"),
        AS_OF.replace(microsecond=0).isoformat().replace("+00:00", "Z"))
    assert row["due_date"] == inv.due_date.isoformat()


def test_filter_text_cannot_break_out_of_the_copy_statement(store, ledger):
    """PostgreSQL's COPY takes no bind parameters, so filter text is inlined as a SQL literal: quotes and
    backslashes in it must stay data (same rows as the parameterised Python path, tables intact)."""
    hostile = ["x'; DROP TABLE invoices; --", "\\'; DROP TABLE invoices; --", "O'Brien\\", "%_\\%", "$$; SELECT 1; $$"]
    customer = sorted(ledger.customers)[0]
    with store.begin() as conn:
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == customer)
                     .values(name="O'Brien\\ & Sons", group_name="g'1 50%", collector="c\\2"))
        if store.engine.dialect.name == "postgresql":  # a server or role may have it off: the export must not care
            conn.exec_driver_sql(f"ALTER DATABASE {store.engine.url.database} SET standard_conforming_strings = off")
    receiptlines.rebuild(store)  # edited by hand, not by an import: the export's lines follow
    store.engine.dispose()
    for text in [*hostile, "O'Brien\\", "g'1 50%"]:
        for flt in (ReceiptFilter(customer=text), ReceiptFilter(group=text), ReceiptFilter(collector=text)):
            fast = "".join(receipts_csv(store, flt, "due_date", False, now=NOW))
            slow = "".join(receipts_csv(store, flt, "due_date", False, now=NOW, copy=False))
            assert fast == slow, (text, flt)
    matched = parse_csv(receipts_csv(store, ReceiptFilter(customer="O'Brien\\"), now=NOW))
    assert matched and {e["customer_id"] for e in matched} == {customer}
    assert parse_csv(receipts_csv(store, ReceiptFilter(group="g'1 50%"), now=NOW))  # one %, not %%
    assert parse_csv(receipts_csv(store, ReceiptFilter(collector="c\\2"), now=NOW))
    with store.begin() as conn:
        assert conn.execute(select(func.count()).select_from(tables.invoices)).scalar_one() == len(ledger.invoices)
