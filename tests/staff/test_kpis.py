"""KPIs on a small hand-made ledger whose every figure is computed by hand in the comments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from portal.cli.main import cli
from portal.export.reader import read_export
from portal.staff.kpis import DEFINITIONS, Kpis, compute, format_kpis
from portal.store import tables
from tests.conftest import TEST_SECRET
from tests.staff_helpers import add_attempt, add_dispute

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # today is 2026-11-20

CUSTOMERS = "customer_id,name,currency\nC1,Acme Inc.,USD\nC2,Müller GmbH,EUR\n"
CONTACTS = "customer_id,email\nC1,ap@acme.example\nC2,ap@mueller.example\n"
# invoice_id, customer, issue, due, amount, balance: days past due as of 2026-11-20 in the comment.
INVOICES = [
    ("I1", "C1", "2026-11-01", "2026-11-30", "1000.00", "1000.00"),  # not due: current
    ("I2", "C1", "2026-10-01", "2026-10-31", "500.00", "200.00"),  # 20 days: 1-30
    ("I3", "C1", "2026-08-01", "2026-08-31", "300.00", "300.00"),  # 81 days: 61-90
    ("I4", "C1", "2026-05-01", "2026-06-01", "50.00", "50.00"),  # 172 days: 90+
    ("I5", "C2", "2026-10-15", "2026-10-20", "400.00", "400.00"),  # 31 days: 31-60
    ("I8", "C2", "2026-11-15", "2026-11-20", "10.00", "10.00"),  # due today: current
    ("I9", "C2", "2026-07-01", "2026-08-22", "70.00", "70.00"),  # 90 days: 61-90
    ("I6", "C1", "2026-10-10", "2026-11-09", "250.00", "250.00"),  # settled later (a failed portal payment)
    ("I7", "C1", "2026-10-12", "2026-11-11", "120.00", "120.00"),  # settled later, paid in the portal
    ("I10", "C1", "2026-06-01", "2026-07-01", "80.00", "80.00"),  # settled 100 days ago: outside the window
]


def write_export(folder: Path, invoices: list[tuple[str, ...]], as_of: datetime) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (folder / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    lines = ["invoice_id,customer_id,number,issue_date,due_date,amount,balance"]
    lines += [f"{i},{c},N-{i},{issue},{due},{amount},{balance}" for i, c, issue, due, amount, balance in invoices]
    (folder / "invoices.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "export.json").write_text(json.dumps({"as_of": as_of.isoformat().replace("+00:00", "Z")}))
    return folder


@pytest.fixture
def kpi_store(store, settings, tmp_path):
    as_of = NOW - timedelta(days=2)
    store.import_snapshot(read_export(write_export(tmp_path / "e1", INVOICES, as_of - timedelta(days=1)), settings))
    # I6, I7 and I10 leave the export: settled (closed at the export's as_of, a day before NOW).
    kept = [i for i in INVOICES if i[0] not in {"I6", "I7", "I10"}]
    store.import_snapshot(read_export(write_export(tmp_path / "e2", kept, as_of), settings))
    with store.begin() as conn:
        conn.execute(update(tables.invoices).where(tables.invoices.c.invoice_id == "I10")
                     .values(closed_at=NOW - timedelta(days=100)))

    ev = store.record_event
    ev("email_sent", "C1", invoice_id="I1", occurred_at=NOW - timedelta(days=5))
    ev("page_viewed", "C1", invoice_id="I1", occurred_at=NOW - timedelta(days=4))
    ev("email_sent", "C1", invoice_id="I2", occurred_at=NOW - timedelta(days=5))
    ev("link_opened", "C1", invoice_id="I2", occurred_at=NOW - timedelta(days=5))  # a scanner: not a view
    ev("email_sent", "C2", invoice_id="I5", occurred_at=NOW - timedelta(days=9))
    ev("email_sent", "C2", invoice_id="I5", occurred_at=NOW - timedelta(days=3))
    ev("page_viewed", "C2", invoice_id="I5", occurred_at=NOW - timedelta(days=2))
    ev("page_viewed", "C1", invoice_id="I3", occurred_at=NOW - timedelta(days=2))  # viewed, never emailed
    ev("email_sent", "C2", invoice_id="I1", occurred_at=NOW - timedelta(days=2))  # not C2's invoice: ignored
    ev("page_viewed", "C1", occurred_at=NOW - timedelta(days=1), detail="account")  # account page: no invoice

    add_attempt(store, "A1", "C1", "succeeded", 12000, allocations=[("I7", "N-I7", 12000, 12000)])
    ev("payment_succeeded", "C1", detail="A1", occurred_at=NOW - timedelta(days=2))
    add_attempt(store, "A2", "C1", "succeeded", 5000)
    ev("payment_succeeded", "C1", detail="A2", occurred_at=NOW - timedelta(days=10))  # last week: not counted
    add_attempt(store, "A3", "C1", "processing", 20000, method="us_bank_account")
    add_attempt(store, "A4", "C1", "refunded", 7000)
    ev("payment_succeeded", "C1", detail="A4", occurred_at=NOW - timedelta(days=1))  # refunded since: not counted
    add_attempt(store, "A5", "C1", "failed", 25000, allocations=[("I6", "N-I6", 25000, 0)])
    add_attempt(store, "A6", "C1", "partially_refunded", 3000, refunded=1000)
    ev("payment_succeeded", "C1", detail="A6", occurred_at=NOW - timedelta(days=3))
    add_attempt(store, "A7", "C1", "processing", 999, method="card")  # a card: not ACH

    add_dispute(store, "C1", "open", 20000, items=[("I2", "N-I2", 20000)])
    add_dispute(store, "C2", "under_review", 40000, currency="EUR", items=[("I5", "N-I5", 40000)])
    add_dispute(store, "C1", "resolved", 5000, items=[("I4", "N-I4", 5000)])
    return store


def test_every_kpi_by_hand(kpi_store):
    k = compute(kpi_store, now=NOW)
    # Open: USD I1 1000 + I2 200 + I3 300 + I4 50; EUR I5 400 + I8 10 + I9 70.
    assert k.open_ar == {"USD": 155000, "EUR": 48000}
    assert k.open_invoices == {"USD": 4, "EUR": 3}
    assert k.aging == {"USD": {"current": 100000, "1-30": 20000, "31-60": 0, "61-90": 30000, "90+": 5000},
                       "EUR": {"current": 1000, "1-30": 0, "31-60": 40000, "61-90": 7000, "90+": 0}}
    assert k.overdue == {"USD": 55000, "EUR": 47000}
    # Emailed: I1, I2, I5 (C2's email naming I1 is not an invoice of C2). Viewed by a person: I1, I5.
    assert (k.invoices_sent, k.invoices_viewed, k.viewed_pct) == (3, 2, 66.7)
    # Settled in 90 days: I6, I7 (I10 100 days ago). Paid in the portal: I7 (A5 failed, applied nothing).
    assert (k.epay_settled, k.epay_paid, k.epay_pct) == (2, 1, 50.0)
    # This week: A1 (2 days ago) and A6 (partly refunded, 3 days ago); not A2 (10 days), not A4 (refunded).
    assert k.payments_week == {"USD": {"count": 2, "amount": 15000}}
    assert k.pending_ach == {"USD": {"count": 1, "amount": 20000}}
    assert k.open_disputes == 2 and k.disputed == {"USD": 20000, "EUR": 40000}
    # Invoiced after 2026-08-22: USD I1 1000 + I2 500 + I6 250 + I7 120 = 1870; EUR I5 400 + I8 10 = 410.
    assert k.invoiced_window == {"USD": 187000, "EUR": 41000}
    # DSO: USD 1550 / 1870 * 90 = 74.598..; EUR 480 / 410 * 90 = 105.365..
    assert k.dso == {"USD": 74.6, "EUR": 105.4}


def test_empty_store_has_no_ratios(store):
    k = compute(store, now=NOW)
    assert isinstance(k, Kpis)
    assert (k.viewed_pct, k.epay_pct, k.dso, k.open_ar, k.open_disputes) == (None, None, {}, {}, 0)


def test_viewed_pct_follows_new_events(kpi_store):
    assert compute(kpi_store, now=NOW).viewed_pct == 66.7
    kpi_store.record_event("page_viewed", "C1", invoice_id="I2", occurred_at=NOW - timedelta(hours=1))
    assert compute(kpi_store, now=NOW).viewed_pct == 100.0  # the rollup was refreshed


def test_formats_and_cli(kpi_store, settings):
    k = compute(kpi_store, now=NOW)
    data = json.loads(format_kpis(k, "json"))
    assert data["open_ar"] == {"USD": 155000, "EUR": 48000} and data["now"] == "2026-11-20T18:00:00Z"
    csv_text = format_kpis(k, "csv")
    assert "open_ar,USD,,1550.00" in csv_text and "dso,EUR,days,105.4" in csv_text
    table = format_kpis(k, "table")
    assert "pending_ach" in table and DEFINITIONS["viewed_pct"] in table
    with pytest.raises(ValueError):
        format_kpis(k, "xml")
    env = {"PORTAL_DATABASE_URL": settings.database_url, "PORTAL_SECRET_KEY": TEST_SECRET}
    result = CliRunner().invoke(cli, ["report", "kpis", "--format", "json"], obj={}, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["open_ar"] == {"USD": 155000, "EUR": 48000}


def test_definitions_cover_every_kpi():
    assert set(DEFINITIONS) == {"open_ar", "overdue", "aging", "viewed_pct", "epay_pct", "payments_week",
                                "pending_ach", "open_disputes", "dso"}
