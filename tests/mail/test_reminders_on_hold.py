"""`portal remind` and holds, on SQLite and PostgreSQL: a customer on hold gets no reminder until the hold ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.collect.access import Actor
from portal.collect.holds import place_hold, release_hold
from portal.mail.reminders import send_reminders
from portal.mail.sending import send_invoices
from tests.mail.test_reminders import NOW, SENT, TODAY
from tests.smtpserver import mail_ledger, running_smtp

CARA = Actor("cara@supplier.example", "collector")


@pytest.fixture
def smtp():
    yield from running_smtp()


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0)


@pytest.fixture
def ledger(store, tmp_path, mail_settings, smtp):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    assert send_invoices(mail_settings, store, now=SENT).ok
    smtp.recorder.messages.clear()
    return ledger


def test_a_customer_on_hold_gets_no_reminder_until_the_hold_ends(mail_settings, store, ledger, smtp):
    place_hold(store, CARA, "C1", "Negotiating", TODAY, now=NOW - timedelta(hours=1))
    held = send_reminders(mail_settings, store, now=NOW)
    assert "C1: on hold" in held.skipped
    assert [m.contact_id for m in held.messages] == ["b1"]  # C2 is not on hold
    assert [r for r, _ in smtp.recorder.messages] == [["bob@beta.example"]]

    release_hold(store, CARA, "C1", now=NOW + timedelta(minutes=1))
    after = send_reminders(mail_settings, store, now=NOW + timedelta(minutes=2))
    assert [m.contact_id for m in after.messages] == ["k1"]


def test_a_hold_ends_by_itself_after_its_last_day(mail_settings, store, ledger, smtp):
    place_hold(store, CARA, "C1", "Negotiating", TODAY - timedelta(days=1), now=NOW - timedelta(days=1))
    result = send_reminders(mail_settings, store, now=NOW)
    assert "C1: on hold" not in result.skipped and "k1" in [m.contact_id for m in result.messages]
