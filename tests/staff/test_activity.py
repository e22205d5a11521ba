"""The activity report on SQLite and PostgreSQL: touches, hours worked from the logged touches (gaps over 30
minutes left out) or a schedule, rates against the targets, promises, closed invoices and cash from the journal,
per collector and for the team; the CLI's json and csv forms."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner

from portal.cli.main import cli
from portal.collect.access import Actor
from portal.collect.promises import Offer, log_touch_with_promise
from portal.collect.touches import log_touch
from portal.staff.activity import COLUMNS, activity, period_bounds
from tests.conftest import TEST_SECRET
from tests.smtpserver import add_row, mail_ledger

TODAY = date(2026, 12, 1)  # a Tuesday
CARA = Actor("cara@supplier.example", "collector")
DAN = Actor("dan@supplier.example", "collector")


def at(hh: int, mm: int, day: date = TODAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC)


@pytest.fixture
def ledger(store, tmp_path):
    from portal.balances import stored

    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    for when, kind, outcome in [((9, 0), "call", "reached"), ((9, 10), "email", ""), ((9, 20), "call", "no_answer"),
                                ((11, 0), "call", "voicemail"), ((11, 20), "email", "")]:
        log_touch(store, CARA, "C1", kind, outcome=outcome, now=at(*when))
    log_touch(store, CARA, "C1", "note", body="Call back at 11", now=at(9, 40))  # time worked, not a contact
    log_touch_with_promise(store, CARA, "C1", "call", Offer(("I-SOON",), "100.00", TODAY.isoformat()),
                           outcome="reached", now=at(11, 25))
    log_touch(store, DAN, "C2", "call", outcome="reached", now=at(14, 0))
    log_touch(store, DAN, "C2", "call", outcome="reached", now=at(14, 0, TODAY - timedelta(days=1)))  # Monday
    # The ERP closed I-OD5 in a later export; a card payment of 300.00 settled I-OD20 in the portal.
    store.import_snapshot(replace(ledger, as_of=at(12, 0), invoices={k: v for k, v in ledger.invoices.items()
                                                                     if k != "I-OD5"}))
    with store.begin() as conn:
        add_row(conn, "payment_attempts", attempt_id="pa1", customer_id="C1", status="succeeded", method="card",
                currency="USD", subtotal=30000, amount=30000, created_at=at(13, 0), updated_at=at(13, 0),
                counted_at=at(13, 0))
        add_row(conn, "payment_allocations", attempt_id="pa1", invoice_id="I-OD20", customer_id="C1",
                number="INV-OD20<i>", amount=30000, applied=30000)
    stored.rebuild(store)
    return ledger


def test_periods_start_on_the_day_the_monday_and_the_first(store):
    assert period_bounds("day", TODAY) == (at(0, 0), at(0, 0, date(2026, 12, 2)))
    assert period_bounds("week", TODAY)[0] == at(0, 0, date(2026, 11, 30))
    assert period_bounds("month", date(2026, 12, 31)) == (at(0, 0), at(0, 0, date(2027, 1, 1)))


def test_a_collectors_day_against_the_targets(store, settings, ledger):
    report = activity(store, settings, "day", TODAY)
    rows = {r["collector"]: r for r in report["rows"]}
    cara = rows[CARA.email]
    assert (cara["calls"], cara["reached"], cara["emails"], cara["touches"], cara["notes"]) == (4, 2, 2, 6, 1)
    # 9:00-9:40 (the note counts as time) and 11:00-11:25; the gap from 9:40 to 11:00 is left out: 65 minutes.
    assert cara["hours_worked"] == 1.08 and cara["touches_per_hour"] == 5.6
    assert cara["touches_per_hour_verdict"] == "under" and cara["emails_per_call"] == 0.5
    assert cara["emails_per_call_verdict"] == "under" and cara["promises_made"] == 1
    assert cara["invoices_closed"] == 1 and cara["cash_collected"] == {"USD": 30000}  # C1 is Cara's
    assert rows[DAN.email]["touches"] == 1 and rows[DAN.email]["touches_per_hour"] is None  # one touch: no hours
    assert rows[DAN.email]["touches_per_hour_verdict"] == "no basis"
    team = rows["(team)"]
    assert team["touches"] == 7 and team["hours_worked"] == 1.08 and team["cash_collected"] == {"USD": 30000}
    assert report["by_hour"][CARA.email][9] == 3 and report["by_hour"][CARA.email][11] == 3
    assert [d for d, closed, cash in report["daily"]] == [TODAY]


def test_a_schedule_and_the_targets_come_from_the_settings(store, settings, ledger):
    scheduled = settings.replace(activity_schedule_hours=8, activity_touches_per_hour=(0, 1),
                                 activity_emails_per_ten_calls=(5, 5))
    report = activity(store, scheduled, "week", TODAY, collector=DAN.email)
    [dan] = report["rows"]  # one collector asked for: no team row
    assert dan["hours_worked"] == 16.0 and dan["touches"] == 2  # two days with touches this week, 8 hours each
    assert dan["touches_per_hour"] == 0.1 and dan["touches_per_hour_verdict"] == "on"
    assert dan["emails_per_call_verdict"] == "under"


def test_portal_report_activity_json_and_csv(store, settings, ledger, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"PORTAL_DATABASE_URL": settings.database_url, "PORTAL_SECRET_KEY": TEST_SECRET}

    def run(*args):
        result = CliRunner().invoke(cli, ["report", "activity", "--period", "day", "--date", "2026-12-01", *args],
                                    obj={}, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    rows = json.loads(run("--format", "json"))
    assert [r["collector"] for r in rows] == [CARA.email, DAN.email, "(team)"]
    assert set(COLUMNS) <= set(rows[0]) and rows[0]["cash_collected"] == {"USD": 30000}
    table = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    assert list(table[0]) == COLUMNS and table[0]["cash_collected"] == "USD:30000"
    assert table[1]["touches_per_hour"] == ""  # no basis: an empty cell, not 0
    assert "touches_per_hour_verdict" in run("--format", "table")
