"""The worklist's "Reminder returned undeliverable" on SQLite and PostgreSQL: an invoice email a real SMTP server
(aiosmtpd) refused, or a reminder a notification reported bounced, puts the customer on the list in its place in
the order; done by a touch after the bounce, snoozed, hidden by a hold, and no reason once old, for other mail, or
when the export no longer has the address."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from portal.collect.holds import place_hold
from portal.collect.promises import Offer, log_touch_with_promise
from portal.collect.touches import log_touch
from portal.collect.worklist import build_worklist, snooze
from portal.disputes.service import submit_question
from portal.mail.sending import send_invoices
from portal.store.mail import Bounce, record_bounce
from tests.collect_helpers import CARA, NOW, TODAY
from tests.smtpserver import running_smtp


@pytest.fixture
def smtp():
    yield from running_smtp()


@pytest.fixture
def limits(settings, smtp):
    return settings.replace(worklist_large_amount=35000, worklist_big_account=100000, worklist_due_soon_days=7,
                            mail_url=smtp.url, mail_retry_delay_ms=0)


def _reasons(wl):
    return [(i.customer_id, i.reason) for i in wl.todo]


def _bounce(store, recipient="ann@c1.example", kind="reminder", at=NOW, message_id="<r1@supplier.example>",
            customer_id="C1", contact_id="k1"):
    with store.begin() as conn:
        return record_bounce(conn, Bounce(message_id, recipient, customer_id, contact_id, kind, "5.1.1",
                                          "user unknown", "dsn", at, ("I-OD5",)), at)


def test_a_refused_invoice_email_comes_after_the_unanswered_and_before_the_large_unviewed(store, ledger, limits,
                                                                                          smtp):
    log_touch_with_promise(store, CARA, "C1", "call", Offer(("I-OD5",), "300.00", TODAY.isoformat()),
                           outcome="reached", now=NOW - timedelta(days=2))
    submit_question(store, "C1", "", "Where is my credit?", now=NOW - timedelta(hours=2))
    smtp.recorder.reject = {"ann@c1.example"}
    send_invoices(limits, store, now=NOW - timedelta(hours=1))
    wl = build_worklist(store, limits, CARA.email, NOW)
    assert _reasons(wl) == [("C1", "promise_due_today"), ("C1", "unanswered"), ("C1", "undeliverable"),
                            ("C1", "large_unviewed"), ("C1", "due_soon_big")]
    item = wl.todo[2]
    assert item.label == "Reminder returned undeliverable"
    assert item.detail == "invoice email to ann@c1.example bounced 2026-12-01 (550)"


def test_a_touch_after_the_bounce_marks_it_done_and_a_new_bounce_brings_it_back(store, ledger, limits):
    _bounce(store, at=NOW - timedelta(days=1))
    assert ("C1", "undeliverable") in _reasons(build_worklist(store, limits, CARA.email, NOW))
    log_touch(store, CARA, "C1", "call", outcome="reached", body="Ann left: new address asked", now=NOW)
    later = NOW + timedelta(minutes=5)
    wl = build_worklist(store, limits, CARA.email, later)
    assert ("C1", "undeliverable") not in _reasons(wl)
    assert ("C1", "undeliverable") in [(i.customer_id, i.reason) for i in wl.done]
    _bounce(store, recipient="pat@c1.example", contact_id="k2", message_id="<r2@supplier.example>", at=later)
    again = [i for i in build_worklist(store, limits, CARA.email, later).todo if i.reason == "undeliverable"]
    assert len(again) == 1 and "pat@c1.example" in again[0].detail and "ann@c1.example" in again[0].detail


def test_snoozed_or_on_hold_it_stays_off_the_list(store, ledger, limits):
    _bounce(store)
    snooze(store, CARA, "C1", "undeliverable", TODAY + timedelta(days=1), now=NOW)
    wl = build_worklist(store, limits, CARA.email, NOW)
    assert ("C1", "undeliverable") not in _reasons(wl) and wl.snoozed >= 1
    tomorrow_but_one = NOW + timedelta(days=2)
    assert ("C1", "undeliverable") in _reasons(build_worklist(store, limits, CARA.email, tomorrow_but_one))
    place_hold(store, CARA, "C1", "Talks with their CFO", TODAY + timedelta(days=5), now=tomorrow_but_one)
    held = build_worklist(store, limits, CARA.email, tomorrow_but_one + timedelta(minutes=1))
    assert ("C1", "undeliverable") not in _reasons(held)


def test_old_bounces_other_mail_and_corrected_addresses_are_no_reason(store, ledger, limits):
    _bounce(store, at=NOW - timedelta(days=15), message_id="<old@supplier.example>")  # past BROKEN_DAYS
    _bounce(store, kind="fresh_link", message_id="<fresh@supplier.example>")  # asked for by the customer
    _bounce(store, recipient="bob@beta.example", customer_id="C2", contact_id="b1", kind="invoices",
            message_id="<b@supplier.example>")
    team = build_worklist(store, limits, "", NOW)
    assert [(i.customer_id, i.reason) for i in team.todo if i.reason == "undeliverable"] == [("C2", "undeliverable")]
    # The next export has Bob's new address: the bounce of the old one is no longer anything to do.
    contacts = [replace(c, email="robert@beta.example") if c.contact_id == "b1" else c for c in ledger.contacts]
    store.import_snapshot(replace(ledger, contacts=contacts))
    assert "undeliverable" not in {i.reason for i in build_worklist(store, limits, "", NOW).todo}
