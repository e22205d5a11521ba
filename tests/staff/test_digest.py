"""`portal digest` (portal/staff/digest.py) against a real SMTP server (SQLite and PostgreSQL): per collector, the
invoices nobody viewed, over the amount, plus the last day's disputes and failed payments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from portal.mail.sending import send_invoices
from portal.staff.digest import send_digest
from tests.smtpserver import EVIL_NAME, add_row, mail_ledger, running_smtp
from tests.webhook_helpers import all_events

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def smtp():
    yield from running_smtp()


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0, ar_inbox="ar-team@supplier.example",
                            digest_unopened_days=5, digest_min_amount=20000)


@pytest.fixture
def ledger(store, tmp_path, mail_settings, smtp):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    send_invoices(mail_settings, store, now=NOW - timedelta(days=10))
    smtp.recorder.messages.clear()
    return ledger


def test_collectors_get_their_unviewed_invoices_over_the_amount(mail_settings, store, ledger, smtp):
    store.record_event("page_viewed", "C1", invoice_id="I-LATER", detail="invoice")
    events_before = len(all_events(store))
    result = send_digest(mail_settings, store, now=NOW)
    # C2's only invoice is under the amount and nothing else happened there: the AR inbox gets nothing.
    assert [(m.email, m.status) for m in result.messages] == [("cara@supplier.example", "sent")]
    [(recipients, message)] = smtp.recorder.messages
    assert recipients == ["cara@supplier.example"]
    text = message.get_body(("plain",)).get_content()
    listed = sorted(n for n in ("SOON", "LATER", "OD5", "OD20", "DISP", "PEND") if f"INV-{n}<i>" in text)
    assert listed == ["DISP", "OD20", "OD5", "PEND"]  # SOON is under 200.00; LATER was viewed
    assert "$600.00" in text and message["Subject"].startswith("AR digest 2026-12-01: 4 unviewed invoice(s)")
    html = message.get_body(("html",)).get_content()
    assert EVIL_NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert len(all_events(store)) == events_before  # staff mail is not a receipt of the customer's


def test_the_last_days_disputes_and_failed_payments_are_listed(mail_settings, store, ledger, smtp):
    recent, old = datetime(2026, 12, 1, 3, 0), datetime(2026, 11, 25, 3, 0)  # naive UTC, as stored
    with store.begin() as conn:
        add_row(conn, "disputes", dispute_id=7, customer_id="C2", status="open", reason="pricing", amount=5000,
                currency="USD", created_at=recent)
        add_row(conn, "disputes", dispute_id=8, customer_id="C2", status="open", reason="damaged",
                created_at=old)
        add_row(conn, "payment_attempts", attempt_id="pa-failed", customer_id="C1", status="failed", amount=30000,
                currency="USD", failure_reason="card_declined", created_at=recent, updated_at=recent)
        add_row(conn, "payment_attempts", attempt_id="pa-ok", customer_id="C1", status="succeeded", amount=100,
                currency="USD", created_at=recent, updated_at=recent)
    result = send_digest(mail_settings, store, now=NOW)
    assert sorted(m.email for m in result.messages) == ["ar-team@supplier.example", "cara@supplier.example"]
    by_to = {to[0]: m for to, m in smtp.recorder.messages}
    inbox = by_to["ar-team@supplier.example"].get_body(("plain",)).get_content()
    assert "dispute 7, $50.00: pricing" in inbox and "dispute 8" not in inbox
    cara = by_to["cara@supplier.example"].get_body(("plain",)).get_content()
    assert "payment pa-failed, $300.00" in cara and "card_declined" in cara and "pa-ok" not in cara


def test_dry_run_sends_nothing(mail_settings, store, ledger, smtp):
    result = send_digest(mail_settings, store, dry_run=True, now=NOW)
    assert [m.status for m in result.messages] == ["would send"] and smtp.messages == []
