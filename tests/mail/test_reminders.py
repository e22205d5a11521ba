"""`portal remind` on a fixture calendar (SQLite and PostgreSQL, real SMTP): which invoices each rule picks,
the exclusions (disputes, pending payments, unsubscribes), the per-contact interval and escalation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr

import pytest
from sqlalchemy import select

from portal.core.config import _reminder_groups
from portal.core.signing import Signer
from portal.mail.reminders import send_reminders
from portal.store.mail import mail_sent, unsubscribe
from tests.smtpserver import EVIL_NAME, add_row, mailed_ledger

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SENT = NOW - timedelta(days=10)  # when `portal send` mailed the invoices


@pytest.fixture
def mail_settings(settings, smtp):
    # Key accounts (C2) are only reminded 7 and 30 days after the due date, never about unopened invoices.
    groups = _reminder_groups({"Key accounts": {"days_overdue": [7, 30], "unopened_days": 0}})
    return settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0, reminder_groups=groups)


@pytest.fixture
def ledger(store, tmp_path, mail_settings, smtp):
    return mailed_ledger(store, tmp_path, mail_settings, smtp, TODAY, SENT)


def dispute_and_pay(store) -> None:
    """DISP is in an open dispute (in full), PEND has a processing bank payment for its whole balance; OD5 had a
    resolved dispute and a failed payment (neither keeps it quiet). Written as rows, as a bulk load would, then
    journaled and positioned as Store.migrate does for such rows (portal/position.rebuild)."""
    from portal.balances import stored

    at = datetime(2026, 12, 1, 6, 0)  # after the export's as_of (midnight)
    with store.begin() as conn:
        add_row(conn, "disputes", dispute_id=1, customer_id="C1", status="open", amount=50000, currency="USD",
                created_at=at)
        add_row(conn, "dispute_invoices", dispute_id=1, invoice_id="I-DISP", amount=50000)
        add_row(conn, "disputes", dispute_id=2, customer_id="C1", status="resolved", amount=30000, currency="USD",
                created_at=at)
        add_row(conn, "dispute_invoices", dispute_id=2, invoice_id="I-OD5", amount=30000)
        add_row(conn, "payment_attempts", attempt_id="pa1", customer_id="C1", status="processing",
                method="us_bank_account", currency="USD", subtotal=60000, amount=60000, created_at=at,
                updated_at=at, counted_at=at)
        add_row(conn, "payment_allocations", attempt_id="pa1", invoice_id="I-PEND", customer_id="C1",
                number="INV-PEND<i>", amount=60000, applied=60000)
        add_row(conn, "payment_attempts", attempt_id="pa2", customer_id="C1", status="failed",
                method="us_bank_account", currency="USD", created_at=at, updated_at=at)
        add_row(conn, "payment_allocations", attempt_id="pa2", invoice_id="I-OD5", customer_id="C1",
                number="INV-OD5<i>", amount=30000)
    stored.rebuild(store)


def _reminded(store) -> dict[tuple[str, str], str]:
    with store.begin() as conn:
        rows = conn.execute(select(mail_sent).where(mail_sent.c.kind == "reminder")).all()
    return {(r.contact_id, r.invoice_id): r.rule for r in rows}


def test_positions_say_which_invoices_may_not_be_asked_for(store, ledger):
    from portal.balances import position

    dispute_and_pay(store)
    with store.begin() as conn:
        now = position.of_invoices(conn)
    assert {iid for iid, p in now.items() if not p.askable} == {"I-DISP", "I-PEND"}
    assert (now["I-DISP"].status, now["I-PEND"].status) == ("in dispute", "payment pending")


def test_rules_pick_exactly_the_expected_invoices(mail_settings, store, ledger, smtp):
    dispute_and_pay(store)
    result = send_reminders(mail_settings, store, now=NOW)
    assert [(m.contact_id, m.status) for m in result.messages] == [("k1", "sent")]
    assert _reminded(store) == {("k1", "I-SOON"): "before_due:3", ("k1", "I-OD5"): "overdue:1",
                                ("k1", "I-OD20"): "overdue:15", ("k1", "I-LATER"): "unopened:7"}
    assert any("INV-DISP" in s and "dispute" in s for s in result.skipped)
    assert any("INV-PEND" in s for s in result.skipped)
    [(recipients, message)] = smtp.recorder.messages
    assert recipients == ["ann@c1.example"]  # never the approver before escalation, never "other", never C2
    assert message["Subject"] == "Overdue: 4 invoices from Example Supplies Inc."


def test_dry_run_lists_and_sends_nothing(mail_settings, store, ledger, smtp):
    result = send_reminders(mail_settings, store, dry_run=True, now=NOW)
    assert [(m.contact_id, m.status) for m in result.messages] == [("k1", "would send")]
    assert "1 message(s) would send" in result.summary()
    assert smtp.messages == [] and _reminded(store) == {}


def test_reminder_message_carries_a_working_unsubscribe_link_and_escapes_names(mail_settings, store, ledger, smtp,
                                                                                settings):
    send_reminders(mail_settings, store, now=NOW)
    [message] = smtp.messages
    assert message.get_content_type() == "multipart/alternative"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip().strip("<>")  # a long value is folded onto its own line
    assert url.startswith("http://127.0.0.1:8000/u/")
    claims = Signer(settings).read_page_token("unsubscribe", url.rsplit("/", 1)[1])
    assert (claims.customer_id, claims.key_version, claims.item) == ("C1", 1, "k1")
    html = message.get_body(("html",)).get_content()
    assert f'href="{url}"' in html and url in message.get_body(("plain",)).get_content()
    assert EVIL_NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert parseaddr(message["To"])[1] == "ann@c1.example" and message["Message-ID"]


def test_one_reminder_per_contact_per_interval_then_the_next_step(mail_settings, store, ledger, smtp):
    dispute_and_pay(store)
    send_reminders(mail_settings, store, now=NOW)
    assert send_reminders(mail_settings, store, now=NOW + timedelta(days=1)).messages == []
    # Three days on, SOON is overdue (a new step), but Ann had a reminder three days ago: it waits.
    waiting = send_reminders(mail_settings, store, now=NOW + timedelta(days=3))
    assert waiting.messages == [] and any("k1" in s and "at most one every 7 days" in s for s in waiting.skipped)
    later = send_reminders(mail_settings, store, now=NOW + timedelta(days=8))
    # Ann: only SOON (the others' steps were sent); B-1 is now 11 days late, past its group's 7.
    assert [(m.contact_id, m.invoice_numbers) for m in later.messages] == [("k1", ["INV-SOON<i>"]), ("b1", ["B-1"])]
    assert _reminded(store)[("k1", "I-SOON")] == "overdue:1"


def test_approvers_are_copied_after_the_configured_number_of_steps(mail_settings, store, ledger, smtp):
    dispute_and_pay(store)
    escalating = mail_settings.replace(reminder_escalate_after=1)
    first = send_reminders(escalating, store, now=NOW)
    assert [m.contact_id for m in first.messages] == ["k1"]  # no invoice had a reminder before
    result = send_reminders(escalating, store, now=NOW + timedelta(days=8))
    # Pat is told about every invoice that already had a reminder step (Ann only gets SOON's new step).
    assert [(m.contact_id, m.invoice_numbers) for m in result.messages if m.customer_id == "C1"] == [
        ("k1", ["INV-SOON<i>"]), ("k2", ["INV-OD20<i>", "INV-OD5<i>", "INV-SOON<i>", "INV-LATER<i>"])]
    assert ["pat@c1.example"] in [to for to, _ in smtp.recorder.messages]


def test_group_rules_override_the_defaults(mail_settings, store, ledger, smtp):
    send_reminders(mail_settings, store, now=NOW)  # B-1 is 3 days late: nothing for Key accounts yet
    assert "b1" not in {c for c, _ in _reminded(store)}
    send_reminders(mail_settings, store, now=NOW + timedelta(days=4))
    assert _reminded(store)[("b1", "I-B1")] == "overdue:7"


def test_unsubscribed_contacts_get_no_reminders(mail_settings, store, ledger, smtp):
    with store.begin() as conn:
        unsubscribe(conn, "C1", "k1", NOW)
    result = send_reminders(mail_settings, store, now=NOW)
    assert result.messages == [] and any("unsubscribed" in s for s in result.skipped)
    assert smtp.messages == []


def test_an_invoice_viewed_by_a_person_gets_no_unopened_reminder(mail_settings, store, ledger, smtp):
    store.record_event("page_viewed", "C1", invoice_id="I-LATER", detail="invoice")
    send_reminders(mail_settings, store, now=NOW)
    assert ("k1", "I-LATER") not in _reminded(store)


def test_reminder_settings_from_portal_toml_and_the_environment(tmp_path, monkeypatch):
    from portal.core.config import load_settings
    from portal.core.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # no ./portal.toml: only the file named below is read
    config = tmp_path / "mail.toml"
    config.write_text('reminder_days_overdue = [2, 20]\nmail_from = "billing@supplier.example"\n\n'
                      '[reminder_groups."Key accounts"]\ndays_overdue = [7, 30]\ninterval_days = 14\n')
    settings = load_settings(config, env={"PORTAL_REMINDER_DAYS_BEFORE_DUE": "5,1"})
    assert settings.reminder_days_overdue == (2, 20) and settings.reminder_days_before_due == (5, 1)
    assert settings.reminder_groups == (("Key accounts", (("days_overdue", (7, 30)), ("interval_days", 14))),)
    from_env = load_settings(config_file=None, env={"PORTAL_REMINDER_GROUPS": '{"Retail": {"unopened_days": 0}}'})
    assert from_env.reminder_groups == (("Retail", (("unopened_days", 0),)),)
    for env in ({"PORTAL_REMINDER_GROUPS": '{"Retail": {"days_late": [1]}}'},
                {"PORTAL_REMINDER_GROUPS": '{"Retail": {"days_overdue": 3}}'},
                {"PORTAL_REMINDER_GROUPS": "not json"},
                {"PORTAL_REMINDER_INTERVAL_DAYS": "-1"},
                {"PORTAL_REMINDER_DAYS_OVERDUE": "1,-5"},
                {"PORTAL_MAIL_FROM": "billing@supplier.example\nBcc: x@evil.example"},
                {"PORTAL_AR_INBOX": "not an address"},
                {"PORTAL_MAIL_ATTEMPTS": "0"}):
        with pytest.raises(ConfigError):
            load_settings(config_file=None, env=env)


def test_an_invoice_paid_in_the_portal_since_the_export_gets_no_reminder(mail_settings, store, ledger, smtp):
    """The export still shows it open, but a settled portal payment after the export's as_of covers it."""
    from portal.balances import stored
    from portal.store.payments import insert_attempt

    invoice = ledger.invoices["I-OD20"]
    paid_at = ledger.as_of + timedelta(hours=1)
    with store.begin() as conn:
        insert_attempt(conn, {"attempt_id": "paid1", "customer_id": invoice.customer_id, "status": "succeeded",
                              "method": "card", "currency": invoice.currency, "subtotal": invoice.balance,
                              "adjustment": 0, "amount": invoice.balance, "created_at": paid_at,
                              "updated_at": paid_at, "counted_at": paid_at},
                       [{"invoice_id": invoice.invoice_id, "number": invoice.number, "amount": invoice.balance,
                         "applied": invoice.balance}])
    stored.rebuild(store)  # rows written by hand: journal them as Store.migrate would
    result = send_reminders(mail_settings, store, now=NOW)
    assert ("k1", "I-OD20") not in _reminded(store)
    assert ("k1", "I-OD5") in _reminded(store)  # the others still are
    assert any("INV-OD20" in s and "paid in the portal" in s for s in result.skipped)
