"""`portal remind` pauses, on SQLite and PostgreSQL: a customer on hold gets no reminder until the hold ends; a
promised invoice none until its day has passed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.collect.access import Actor
from portal.collect.holds import place_hold, release_hold
from portal.collect.promises import Offer, log_touch_with_promise
from portal.mail.reminders import send_reminders
from tests.mail.test_reminders import NOW, SENT, TODAY, _reminded
from tests.smtpserver import mailed_ledger

CARA = Actor("cara@supplier.example", "collector")


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0)


@pytest.fixture
def ledger(store, tmp_path, mail_settings, smtp):
    return mailed_ledger(store, tmp_path, mail_settings, smtp, TODAY, SENT)


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


def test_a_promised_invoice_is_not_reminded_until_its_day_has_passed(mail_settings, store, ledger, smtp):
    log_touch_with_promise(store, CARA, "C1", "call", Offer(("I-OD5",), "300.00", TODAY.isoformat()),
                           outcome="reached", now=NOW - timedelta(hours=1))
    result = send_reminders(mail_settings, store, now=NOW)
    assert any("INV-OD5<i>: promised by 2026-12-01" in s for s in result.skipped)
    reminded = _reminded(store)
    assert ("k1", "I-OD5") not in reminded and ("k1", "I-OD20") in reminded  # the other invoices still go

    later = send_reminders(mail_settings.replace(reminder_interval_days=0), store, now=NOW + timedelta(days=1))
    assert ("k1", "I-OD5") in _reminded(store) and not any("promised" in s for s in later.skipped)
