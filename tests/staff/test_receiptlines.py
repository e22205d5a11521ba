"""The receipt lines (portal/staff/receiptlines.py): the ready-made rows of the receipts export follow every import and
every rollup refresh, with nobody calling `rebuild`, and the export stays byte for byte the Python path's."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from portal.export.reader import read_export
from portal.staff import receiptlines, receiptlock
from portal.staff.receipts_table import RECEIPT_COLUMNS, RECEIPT_SORT_NAMES, ReceiptFilter, receipts_csv
from portal.store import staff as receipttables
from tests.conftest import AS_OF
from tests.staff_helpers import approve_invoice, parse_csv

pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # lines are kept on PostgreSQL

NOW = AS_OF


def write_export(folder: Path, customers: list[str], invoices: list[str]) -> Path:
    """customers: "id,name,currency,group,collector" lines; invoices: "id,customer,number,issue,due,amount,balance"."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text("customer_id,name,currency,group,collector\n" + "\n".join(customers) + "\n",
                                          encoding="utf-8")
    (folder / "contacts.csv").write_text("customer_id,email\n" + "".join(
        f"{c.split(',')[0]},ap{n}@example.com\n" for n, c in enumerate(customers)), encoding="utf-8")
    (folder / "invoices.csv").write_text("invoice_id,customer_id,number,issue_date,due_date,amount,balance\n"
                                         + "\n".join(invoices) + "\n", encoding="utf-8")
    (folder / "export.json").write_text(json.dumps({"as_of": AS_OF.isoformat().replace("+00:00", "Z")}))
    return folder


CUSTOMERS = ['C1,"Acme, Inc.",USD,enterprise,dana@example.com', "C2,Globex,USD,smb,lee@example.com",
             "C3,=Formula Ltd,EUR,smb,"]
INVOICES = ["I1,C1,N-1,2026-09-01,2026-10-01,100.00,100.00", "I2,C1,N-2,2026-10-01,2026-10-31,250.50,200.00",
            "I3,C2,N-3,2026-10-05,2026-11-04,75.00,75.00", "I4,C3,N-4,2026-11-01,2026-12-01,10.00,10.00",
            "I5,C2,N-5,2026-08-01,2026-08-31,5.00,5.00"]


def exports_agree(store, **kw) -> str:
    fast = "".join(receipts_csv(store, now=NOW, **kw))
    assert fast == "".join(receipts_csv(store, now=NOW, copy=False, **kw))
    return fast


def every_export_agrees(store) -> None:
    for flt in (ReceiptFilter(), ReceiptFilter(include_closed=True), ReceiptFilter(customer="globex")):
        for sort in ("due_date", "days_overdue", "customer_name", "last_viewed_at"):
            for descending in (False, True):
                exports_agree(store, flt=flt, sort=sort, descending=descending)


def test_the_lines_are_the_export_columns(store):
    assert receiptlines.COLUMNS == RECEIPT_COLUMNS


@pytest.mark.parametrize("all_at_once", [20_000, 1], ids=["named-ids", "all-lines"])
def test_lines_follow_imports_and_refreshes_without_a_rebuild(store, settings, tmp_path, monkeypatch, all_at_once):
    """Both ways an import writes lines: the invoices it names (by lists of ids), or every line at once (the
    way of a big first import; a threshold of 1 sends these small imports that way)."""
    monkeypatch.setattr(receiptlines, "_ALL_AT_ONCE", all_at_once)
    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    every_export_agrees(store)
    for kind, invoice in (("email_sent", "I1"), ("link_opened", "I1"), ("page_viewed", "I2"),
                          ("document_viewed", "I3"), ("email_sent", "I5")):
        store.record_event(kind, "C2" if invoice in ("I3", "I5") else "C1", invoice_id=invoice,
                           occurred_at=NOW - timedelta(days=2, microseconds=120))
    every_export_agrees(store)  # the export refreshes the rollup first: the tails follow
    # Renamed customer, moved invoice (I3 to C1, which has events for it under C2), changed balance, closed
    # invoice (I5 leaves the export), new invoice: one import, no rebuild.
    customers = ["C1,Acme Renamed,USD,mid-market,kim@example.com", *CUSTOMERS[1:]]
    invoices = ["I1,C1,N-1,2026-09-01,2026-10-01,100.00,40.00", INVOICES[1],
                "I3,C1,N-3,2026-10-05,2026-11-04,75.00,75.00", INVOICES[3],
                "I6,C2,N-6,2026-11-10,2026-12-10,60.00,60.00"]
    store.import_snapshot(read_export(write_export(tmp_path / "e2", customers, invoices), settings))
    store.record_event("page_viewed", "C2", invoice_id="I6", occurred_at=NOW - timedelta(hours=1))
    every_export_agrees(store)
    rows = {line.split(",")[4]: line for line in exports_agree(store, flt=ReceiptFilter(include_closed=True))
            .splitlines()[1:]}
    assert rows["I1"].startswith("C1,Acme Renamed,mid-market,kim@example.com,I1,N-1,true,USD,100.00,40.00,")
    # Cells 12 and 13: what the invoice owes now and its status (its stored position).
    assert rows["I3"].startswith("C1,Acme Renamed,") and rows["I3"].split(",")[12:18] == [
        "75.00", "open", "0", "0", "0", "0"]
    assert rows["I5"].split(",")[6] == "false" and rows["I5"].split(",")[11:15] == [
        "0", "0.00", "closed", "1"]  # closed: 0 days, nothing owed
    assert rows["I6"].split(",")[16] == "1"
    with store.begin() as conn:
        n_lines = conn.execute(select(func.count()).select_from(receipttables.receipt_lines)).scalar_one()
    assert n_lines == 6  # every invoice the store knows, closed ones too


def test_every_sort_and_the_days_overdue_splice_match_the_python_path(store, settings, tmp_path):
    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    store.record_event("page_viewed", "C1", invoice_id="I2", occurred_at=NOW - timedelta(days=1))
    for sort in RECEIPT_SORT_NAMES:
        for descending in (False, True):
            exports_agree(store, sort=sort, descending=descending)
    # days_overdue is spliced in at export time: another day, other figures, same lines.
    later = "".join(receipts_csv(store, now=NOW + timedelta(days=30)))
    assert later == "".join(receipts_csv(store, now=NOW + timedelta(days=30), copy=False))
    assert later != exports_agree(store)


def test_the_default_export_reads_the_lines_in_their_index_order(store, settings, tmp_path):
    """The default export must not sort 18 MB of lines: its plan is the partial index, both ways."""
    from portal.staff import pgcsv
    from portal.staff.receipts_table import receipt_lines_query

    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    for sort, descending in (("due_date", False), ("due_date", True), ("days_overdue", False)):
        query, index_order = receipt_lines_query(ReceiptFilter(), sort, descending, NOW)
        assert index_order
        with store.begin() as conn:
            conn.exec_driver_sql("SET LOCAL enable_sort = off")
            plan = "\n".join(conn.execute(text("EXPLAIN " + pgcsv.compile_literal(query))).scalars())
        assert "ix_receipt_lines_open_due_date" in plan and "Sort" not in plan, plan
    _, index_order = receipt_lines_query(ReceiptFilter(), "customer_name", False, NOW)
    assert not index_order


def test_migrate_writes_missing_lines(store, settings, tmp_path):
    """A database upgraded from before the lines (or loaded in bulk) gets them from the next migrate."""
    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    before = exports_agree(store)
    with store.begin() as conn:
        conn.execute(delete(receipttables.receipt_lines))
    assert "".join(receipts_csv(store, now=NOW)).count("\n") == 1  # only the header: nothing to read
    store.migrate()
    assert exports_agree(store) == before
    assert receiptlines.ensure_complete(store) == 0  # complete: two counts, no writes


def test_an_approval_reaches_the_lines_without_a_rebuild(store, settings, tmp_path):
    """The approver's POST is all it takes: the export's next rollup refresh rewrites the approved invoice's tail,
    so its approval cells read as the Python path's; a second approval changes nothing (the first one counts)."""
    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    exports_agree(store)
    first = NOW - timedelta(days=1, microseconds=500)
    approve_invoice(store, settings, "C1", "I2", "=boss@acme.example", now=first)
    every_export_agrees(store)
    rows = {r["invoice_id"]: r for r in parse_csv([exports_agree(store)])}
    assert (rows["I2"]["approved_at"], rows["I2"]["approved_by"]) == (
        first.isoformat().replace("+00:00", "Z"), "'=boss@acme.example")  # a formula never runs
    assert rows["I1"]["approved_at"] == rows["I1"]["approved_by"] == ""  # another invoice of the customer
    approve_invoice(store, settings, "C1", "I2", "later@acme.example", now=NOW)
    assert parse_csv([exports_agree(store)]) == list(rows.values())


def test_migrate_rewrites_lines_made_before_the_approval_cells(store, settings, tmp_path):
    """A database upgraded from before the approval columns has tails two cells short: the next migrate rebuilds."""
    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    approve_invoice(store, settings, "C2", "I3", "boss@globex.example", now=NOW)
    before = exports_agree(store)
    with store.begin() as conn:  # the tails as the previous version wrote them
        conn.execute(receipttables.receipt_lines.update().values(
            tail=func.regexp_replace(receipttables.receipt_lines.c.tail, ",[^,]*,[^,]*\n$", "\n")))
    assert "".join(receipts_csv(store, now=NOW)) != before
    store.migrate()
    assert exports_agree(store) == before


def test_an_import_waits_for_a_running_refresh(store, settings, tmp_path):
    """Imports and refreshes take the same lock, so neither formats lines from data the other has not
    committed yet: an import started while a refresh holds the lock finishes only after it."""
    store.import_snapshot(read_export(write_export(tmp_path / "e1", CUSTOMERS, INVOICES), settings))
    ledger = read_export(write_export(tmp_path / "e2", ["C1,Renamed,USD,,", *CUSTOMERS[1:]], INVOICES), settings)
    finished: list[float] = []
    with store.begin() as conn:
        receiptlock.lock(conn)
        worker = threading.Thread(target=lambda: (store.import_snapshot(ledger), finished.append(time.monotonic())))
        worker.start()
        worker.join(1.0)
        assert worker.is_alive() and not finished  # blocked on the lock
        released = time.monotonic()
    worker.join(10)
    assert finished and finished[0] >= released
    assert ",Renamed," in exports_agree(store)
