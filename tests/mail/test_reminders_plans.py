"""`portal remind` with a payment plan, through a real SMTP server, on SQLite and PostgreSQL: an invoice on an
open plan is not chased as a whole; nothing is sent before an instalment's day; from it, one reminder per
instalment names the instalment's amount and day; a cancelled plan's invoice is chased as usual again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.collect.access import Actor
from portal.collect.plans import Proposal, cancel_plan, make_plan
from portal.mail.reminders import send_reminders
from portal.store.mail import mail_sent
from tests.mail.test_reminders import NOW, SENT, TODAY, _reminded
from tests.smtpserver import mailed_ledger

CARA = Actor("cara@supplier.example", "collector")


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0, reminder_interval_days=0)


@pytest.fixture
def ledger(store, tmp_path, mail_settings, smtp):
    return mailed_ledger(store, tmp_path, mail_settings, smtp, TODAY, SENT)


def _rules(store, invoice_id) -> set[str]:
    with store.begin() as conn:
        return set(conn.execute(select(mail_sent.c.rule).where(mail_sent.c.kind == "reminder",
                                                               mail_sent.c.contact_id == "k1",
                                                               mail_sent.c.invoice_id == invoice_id)).scalars())


def _bodies(smtp) -> list[str]:
    return [m.get_body(("plain",)).get_content() for _, m in smtp.recorder.messages]


def test_a_planned_invoice_is_reminded_of_the_instalment_due_not_the_whole_invoice(mail_settings, store, ledger,
                                                                                    smtp):
    # I-OD20 (400.00, 20 days overdue) in 4 weekly instalments of 100.00 from Dec 3.
    plan_id = make_plan(store, CARA, "C1", Proposal("I-OD20", "weekly", (TODAY + timedelta(days=2)).isoformat(),
                                                    "4"), now=NOW - timedelta(hours=1))
    before = send_reminders(mail_settings, store, now=NOW)
    assert before.ok and ("k1", "I-OD20") not in _reminded(store) and ("k1", "I-OD5") in _reminded(store)
    assert not any("INV-OD20" in body for body in _bodies(smtp))
    smtp.recorder.messages.clear()

    on_the_day = send_reminders(mail_settings, store, now=NOW + timedelta(days=2))
    assert on_the_day.ok and _reminded(store)[("k1", "I-OD20")] == "instalment:1"
    [body] = [b for b in _bodies(smtp) if "INV-OD20" in b]
    assert "instalment 1 of 4: $100.00 due Dec 3, 2026" in body
    smtp.recorder.messages.clear()
    send_reminders(mail_settings, store, now=NOW + timedelta(days=3))  # instalment 1 was reminded once
    assert not any("INV-OD20" in body for body in _bodies(smtp))

    cancel_plan(store, CARA, "C1", plan_id, now=NOW + timedelta(days=3))
    send_reminders(mail_settings, store, now=NOW + timedelta(days=3, hours=1))
    assert _rules(store, "I-OD20") == {"instalment:1", "overdue:15"}  # chased as a whole again
