"""The staff tables: rows, filters, sorting, pagination, query counts, and CSV exports that match the database."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from portal.balances import position
from portal.core.money import to_decimal
from portal.export.reader import read_export
from portal.staff import receiptlines, reports
from portal.staff import tables as stafftables
from portal.staff.tables import (
    RECEIPT_COLUMNS,
    RECEIPT_SORT_NAMES,
    ReceiptFilter,
    customer_timeline,
    customers_search,
    disputes_csv,
    disputes_page,
    payments_csv,
    payments_page,
    receipts_csv,
    receipts_page,
    timeline_csv,
)
from portal.store import database as tables
from tests.conftest import AS_OF
from tests.test_kpis import add_attempt, add_dispute

NOW = AS_OF


@pytest.fixture
def ledger(store, settings, tmp_path):
    from portal.export.sample import write_sample

    ledger = read_export(write_sample(tmp_path / "export", customers=8, invoices=60, seed=11, as_of=AS_OF), settings)
    store.import_snapshot(ledger)
    with store.begin() as conn:
        conn.execute(update(tables.invoices).values(first_seen_at=AS_OF - timedelta(days=20)))
    # Events for a random half of the invoices, of every receipt kind, plus account views and other kinds.
    rng = random.Random(4)
    for inv in sorted(ledger.invoices.values(), key=lambda i: i.invoice_id):
        if rng.random() < 0.5:
            continue
        base = AS_OF - timedelta(days=rng.randrange(1, 40), minutes=rng.randrange(1000))
        for kind in rng.sample(["email_sent", "link_opened", "page_viewed", "document_viewed"], rng.randrange(1, 4)):
            for n in range(rng.randrange(1, 3)):
                store.record_event(kind, inv.customer_id, invoice_id=inv.invoice_id,
                                   occurred_at=base + timedelta(hours=n + 1))
    first = sorted(ledger.customers)[0]
    store.record_event("page_viewed", first, occurred_at=AS_OF - timedelta(days=1), detail="account")
    return ledger


def all_rows(store, flt=None, **kw):
    page = receipts_page(store, flt, per_page=500, now=NOW, **kw)
    assert page.total == len(page.rows)
    return page.rows


def test_receipts_rows_agree_with_the_receipts_report(store, ledger):
    rows = {r["invoice_id"]: r for r in all_rows(store)}
    expected = {r["invoice_id"]: r for r in reports.receipts(store, now=NOW)}
    assert set(rows) == set(expected) == set(ledger.invoices)
    for invoice_id, row in rows.items():
        want = expected[invoice_id]
        for key in ("customer_id", "customer_name", "number", "is_open", "currency", "amount", "balance",
                    "emails_sent", "link_opened", "page_viewed", "documents_viewed"):
            assert row[key] == want[key], (invoice_id, key)
        for key in ("first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at"):
            assert reports.iso_utc(row[key]) == want[key], (invoice_id, key)
        assert row["due_date"].isoformat() == want["due_date"]
        customer = ledger.customers[row["customer_id"]]
        assert (row["group_name"], row["collector"]) == (customer.group, customer.collector)
        assert row["days_overdue"] == max(0, (NOW.date() - row["due_date"]).days)
    assert set(rows[next(iter(rows))]) == set(RECEIPT_COLUMNS)


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


def test_unknown_sort_is_refused_everywhere(store, ledger):
    for call in (lambda: receipts_page(store, sort="amount; DROP TABLE invoices"),
                 lambda: receipts_csv(store, sort="nope"),
                 lambda: payments_page(store, sort="nope"), lambda: payments_csv(store, sort="nope"),
                 lambda: disputes_page(store, sort="nope"), lambda: disputes_csv(store, sort="nope"),
                 lambda: disputes_page(store, state="closed")):
        with pytest.raises(ValueError):
            call()


def test_filters(store, ledger):
    rows = all_rows(store)
    unopened = {r["invoice_id"] for r in all_rows(store, ReceiptFilter(unopened_days=7))}
    assert unopened == {r["invoice_id"] for r in reports.receipts(store, unopened_days=7, now=NOW)}
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


def test_pages_are_one_query_plus_a_count(store, ledger):
    add_attempt(store, "A1", sorted(ledger.customers)[0], "succeeded", 100)
    add_dispute(store, sorted(ledger.customers)[0], "open", 100, items=[("I1", "N-1", 100)])
    stafftables.receipts_page(store, now=NOW)  # the rollup is current: refresh below reads only

    def selects(call) -> int:
        seen = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(store.engine, "before_cursor_execute", count)
        try:
            call()
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        return len(seen)

    for per_page in (1, 50):
        assert selects(lambda p=per_page: receipts_page(store, per_page=p, now=NOW, refresh=False)) == 2
        assert selects(lambda p=per_page: receipts_page(store, per_page=p, now=NOW, refresh=False,
                                                        sort="page_viewed")) == 2
        # Filtered through the rollup: the count comes with the rows, one statement in all.
        assert selects(lambda p=per_page: receipts_page(store, ReceiptFilter(unopened_days=1), per_page=p, now=NOW,
                                                        refresh=False)) == 1
        assert selects(lambda p=per_page: payments_page(store, per_page=p)) == 4  # + allocations + credits
        assert selects(lambda p=per_page: disputes_page(store, per_page=p)) == 3  # + invoices
        assert selects(lambda p=per_page: customer_timeline(store, "C00001", per_page=p)) == 3  # + customer


def parse(chunks) -> list[dict[str, str]]:
    text = "".join(chunks)
    return list(csv.DictReader(io.StringIO(text)))


def test_receipts_csv_matches_the_database(store, ledger):
    flt = ReceiptFilter(unopened_days=3)
    exported = parse(receipts_csv(store, flt, "balance", True, now=NOW))
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
    everything = parse(receipts_csv(store, now=NOW))
    assert len(everything) == len(ledger.invoices)
    report = {r["invoice_id"]: r for r in reports.receipts(store, now=NOW)}
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
    exported = [e for e in parse(receipts_csv(store, ReceiptFilter(customer=customer), now=NOW))]
    assert exported and all(e["customer_name"] == "'=HYPERLINK(\"http://evil.example\",\"x\")" for e in exported)
    assert all(e["collector"] == "'@boss" for e in exported)
    assert reports.csv_cell("-12.50") == "-12.50" and reports.csv_cell("-1+2") == "'-1+2"
    assert reports.csv_cell("\tx") == "'\tx" and reports.csv_cell(None) == "" and reports.csv_cell(True) == "true"


def _status(invoice) -> str:
    """The status of an invoice nothing was paid on in the portal: from its export balance alone."""
    return "paid" if invoice.balance == 0 else "partly paid" if invoice.balance < invoice.amount else "open"


def test_payments_page_and_csv(store, ledger):
    c1, c2 = sorted(ledger.customers)[:2]
    invs = sorted((i for i in ledger.invoices.values() if i.customer_id == c1), key=lambda i: i.invoice_id)
    base = AS_OF - timedelta(days=5)
    add_attempt(store, "A1", c1, "succeeded", 15000, currency="USD", created=base,
                allocations=[(invs[0].invoice_id, invs[0].number, 10000, 10000),
                             (invs[1].invoice_id, invs[1].number, 5000, 4000)], unapplied=1000,
                payment_intent="pi_1", charge="ch_1", checkout_session="cs_1")
    add_attempt(store, "A2", c1, "failed", 2000, method="us_bank_account", created=base + timedelta(hours=1),
                allocations=[(invs[0].invoice_id, invs[0].number, 2000, 0)], failure_reason="insufficient funds")
    add_attempt(store, "A3", c2, "processing", 3000, method="us_bank_account", created=base + timedelta(hours=2),
                allocations=[("X", "N-X", 3000, 3000)])
    page = payments_page(store)
    assert [r["attempt_id"] for r in page.rows] == ["A3", "A2", "A1"] and page.total == 3  # newest first
    a1 = page.rows[2]
    # Each allocation with where its invoice stands now (the payments were before the export: its balance).
    assert a1["allocations"] == [{"invoice_id": invs[0].invoice_id, "number": invs[0].number, "amount": 10000,
                                  "applied": 10000, "open": invs[0].balance, "status": _status(invs[0])},
                                 {"invoice_id": invs[1].invoice_id, "number": invs[1].number, "amount": 5000,
                                  "applied": 4000, "open": invs[1].balance, "status": _status(invs[1])}]
    assert (a1["payment_intent"], a1["charge"], a1["checkout_session"], a1["unapplied"]) == ("pi_1", "ch_1", "cs_1",
                                                                                                1000)
    assert a1["customer_name"] == ledger.customers[c1].name and a1["needs_review"] is False
    assert [r["attempt_id"] for r in payments_page(store, status="failed").rows] == ["A2"]
    assert [r["attempt_id"] for r in payments_page(store, method="us_bank_account", sort="amount").rows] == \
        ["A3", "A2"]
    assert {r["attempt_id"] for r in payments_page(store, customer=c2).rows} == {"A3"}
    p2 = payments_page(store, per_page=2, page=2, sort="created_at", descending=False)
    assert [r["attempt_id"] for r in p2.rows] == ["A3"] and p2.pages == 2

    exported = parse(payments_csv(store, sort="created_at", descending=False))
    assert [e["attempt_id"] for e in exported] == ["A1", "A2", "A3"]
    e1 = exported[0]
    assert (e1["amount"], e1["unapplied"], e1["invoice_numbers"], e1["allocated"], e1["applied"]) == (
        "150.00", "10.00", f"{invs[0].number};{invs[1].number}", "100.00;50.00", "100.00;40.00")
    assert e1["created_at"] == base.isoformat().replace("+00:00", "Z") and e1["needs_review"] == "false"
    assert (e1["invoice_open"], e1["invoice_status"]) == (
        f"{invs[0].balance / 100:.2f};{invs[1].balance / 100:.2f}", f"{_status(invs[0])};{_status(invs[1])}")
    assert exported[1]["failure_reason"] == "insufficient funds"


def test_disputes_page_and_csv(store, ledger):
    c1, c2 = sorted(ledger.customers)[:2]
    base = AS_OF - timedelta(days=9)
    d1 = add_dispute(store, c1, "open", 500, items=[("I1", "N-1", 300), ("I2", "N-2", 200)], attachments=2,
                     created=base, message="Wrong price,\n see \"PO\"")
    d2 = add_dispute(store, c2, "under_review", 700, reason="damaged", currency="EUR", items=[("I3", "N-3", 700)],
                     created=base + timedelta(days=1))
    d3 = add_dispute(store, c1, "resolved", 100, items=[("I4", "N-4", 100)], created=base + timedelta(days=2))
    page = disputes_page(store)
    assert [r["dispute_id"] for r in page.rows] == [d1, d2, d3]  # oldest first
    first = page.rows[0]
    assert (first["reference"], first["attachments"], first["numbers"], first["invoice_ids"]) == (
        f"D-{d1}", 2, ["N-1", "N-2"], ["I1", "I2"])
    assert first["message"].startswith("Wrong price") and first["customer_name"] == ledger.customers[c1].name
    assert [r["dispute_id"] for r in disputes_page(store, state="unresolved").rows] == [d1, d2]
    assert [r["dispute_id"] for r in disputes_page(store, state="resolved").rows] == [d3]
    assert [r["dispute_id"] for r in disputes_page(store, reason="damaged").rows] == [d2]
    assert [r["dispute_id"] for r in disputes_page(store, customer=c1, sort="amount", descending=True).rows] == \
        [d1, d3]
    exported = parse(disputes_csv(store, state="unresolved"))
    assert [e["reference"] for e in exported] == [f"D-{d1}", f"D-{d2}"]
    assert (exported[0]["amount"], exported[0]["numbers"], exported[0]["message"], exported[1]["amount"]) == (
        "5.00", "N-1;N-2", "Wrong price,\n see \"PO\"", "7.00")


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
    exported = parse(timeline_csv(store, customer))
    assert [int(e["event_id"]) for e in exported] == [r["event_id"] for r in everything]
    assert exported[0]["occurred_at"].endswith("Z")
    missing, empty = customer_timeline(store, "nobody")
    assert missing is None and empty.total == 0 and empty.rows == []

    assert [c["customer_id"] for c in customers_search(store, customer)][0] == customer
    name_part = ledger.customers[customer].name.split()[0][:3].lower()
    assert customer in [c["customer_id"] for c in customers_search(store, name_part, limit=100)]
    assert customers_search(store, "  ") == []
    assert len(customers_search(store, "c0", limit=3)) == 3  # id prefix, case-insensitive


def test_postgresql_copy_export_is_byte_for_byte_the_python_export(store, ledger):
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
    position.rebuild(store)  # edited by hand, not by an import: the stored positions follow, then the lines
    receiptlines.rebuild(store)
    inv = ledger.invoices[invoice_ids[0]]
    store.record_event("page_viewed", inv.customer_id, invoice_id=inv.invoice_id,
                       occurred_at=AS_OF.replace(microsecond=0))  # whole seconds: no fraction in ISO 8601
    store.record_event("page_viewed", inv.customer_id, invoice_id=inv.invoice_id,
                       occurred_at=AS_OF.replace(microsecond=120))
    for flt, sort, descending in ((ReceiptFilter(), "due_date", False),
                                  (ReceiptFilter(include_closed=True), "customer_name", True),
                                  (ReceiptFilter(unopened_days=5, min_amount=1), "last_viewed_at", False)):
        fast = "".join(receipts_csv(store, flt, sort, descending, now=NOW))
        slow = "".join(receipts_csv(store, flt, sort, descending, now=NOW, copy=False))
        assert fast == slow
    exported = {e["invoice_id"]: e for e in parse(receipts_csv(store, now=NOW))}
    assert exported[invoice_ids[0]]["amount"] == "12345" and exported[invoice_ids[1]]["amount"] == "1.005"
    assert exported[invoice_ids[2]]["amount"] == "0.05" and exported[invoice_ids[3]]["balance"] == "0.00"
    assert exported[invoice_ids[0]]["number"] == "'=N0"
    assert exported[invoice_ids[0]]["first_viewed_at"] == AS_OF.replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")
    assert exported[invoice_ids[0]]["last_viewed_at"].endswith(".000120Z")
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
    [row] = [e for e in parse(fast) if e["invoice_id"] == inv.invoice_id]
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
    matched = parse(receipts_csv(store, ReceiptFilter(customer="O'Brien\\"), now=NOW))
    assert matched and {e["customer_id"] for e in matched} == {customer}
    assert parse(receipts_csv(store, ReceiptFilter(group="g'1 50%"), now=NOW))  # one %, not %%
    assert parse(receipts_csv(store, ReceiptFilter(collector="c\\2"), now=NOW))
    with store.begin() as conn:
        assert conn.execute(select(func.count()).select_from(tables.invoices)).scalar_one() == len(ledger.invoices)
