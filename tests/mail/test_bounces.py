"""Bounces on SQLite and PostgreSQL: a recipient a real SMTP server (aiosmtpd) refuses with 550 is recorded as a
bounce of that message, and `portal mail bounces` reads RFC 3464 notifications (built with the stdlib) from an
mbox or a Maildir, matched by the original Message-ID and recipient, once however often it reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from portal.core.errors import PortalError
from portal.mail.bounces import read_bounces
from portal.mail.sending import send_invoices
from portal.store.mail import mail_bounces, mail_sent
from tests.bounce_helpers import dsn, write_maildir, write_mbox
from tests.smtpserver import mail_ledger
from tests.webhook_helpers import all_events

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_from="billing@supplier.example", mail_retry_delay_ms=0)


@pytest.fixture
def ledger(store, tmp_path):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    return ledger


@pytest.fixture
def sent(mail_settings, store, ledger):
    """The invoice emails went out; contact -> the Message-ID it was sent under."""
    assert send_invoices(mail_settings, store, now=NOW).ok
    with store.begin() as conn:
        rows = conn.execute(select(mail_sent.c.contact_id, mail_sent.c.message_id)).all()
    return {r.contact_id: r.message_id for r in rows}


def _bounces(store):
    with store.begin() as conn:
        return conn.execute(select(mail_bounces).order_by(mail_bounces.c.bounce_id)).all()


def _bounce_events(store):
    return sorted((e.contact_id, e.invoice_id, e.detail) for e in all_events(store) if e.kind == "email_bounced")


def test_a_recipient_refused_with_550_is_recorded_as_a_bounce_of_that_message(mail_settings, store, ledger, smtp):
    smtp.recorder.reject = {"ann@c1.example"}
    result = send_invoices(mail_settings, store, now=NOW)
    [failed] = result.having("failed")
    assert failed.email == "ann@c1.example" and "recorded as undeliverable" in failed.error
    [bounce] = _bounces(store)
    assert (bounce.recipient, bounce.customer_id, bounce.contact_id, bounce.kind, bounce.status, bounce.source) == (
        "ann@c1.example", "C1", "k1", "invoices", "550", "sending")
    assert "5.1.1 No such user here" in bounce.diagnostic and bounce.message_id.startswith("<")
    # One event per invoice the refused message named, on the customer's timeline; none for the others.
    events = _bounce_events(store)
    assert {c for c, _, _ in events} == {"k1"} and len(events) == 6
    assert all(d.startswith("ann@c1.example 550 invoices <") for _, _, d in events)
    assert "k1" not in {r.contact_id for r in _sent_rows(store)}  # still not sent: the next run tries again


def test_a_relay_in_trouble_is_no_bounce(mail_settings, store, ledger, smtp):
    smtp.recorder.fail_after = 0  # 451 at DATA: transient, the relay's problem, not the address's
    result = send_invoices(mail_settings, store, now=NOW, sleep=lambda _: None)
    assert not result.ok and _bounces(store) == [] and _bounce_events(store) == []


def test_ses_message_rejected_names_the_recipient_and_throttling_names_nobody(settings):
    from botocore.exceptions import ClientError

    from portal.mail.transport import MailError, SesTransport

    class Client:
        def __init__(self, code):
            self.code = code

        def send_raw_email(self, RawMessage):  # noqa: N803 - boto3's argument name
            raise ClientError({"Error": {"Code": self.code, "Message": "Address blacklisted."}}, "SendRawEmail")

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "ar@supplier.example", "Ann <Ann@C1.example>", "Invoices"
    message.set_content("x")
    for code, refused in (("MessageRejected", {"ann@c1.example"}), ("Throttling", set())):
        ses = SesTransport.__new__(SesTransport)  # no boto3 client: the stand-in answers as SES does
        ses.region, ses.client = "eu-west-1", Client(code)
        with pytest.raises(MailError) as failure:
            ses.send(message)
        assert set(failure.value.refused) == refused


def _sent_rows(store):
    with store.begin() as conn:
        return conn.execute(select(mail_sent)).all()


def test_notifications_in_an_mbox_record_each_bounce_once(store, sent, tmp_path):
    later = NOW + timedelta(hours=2)
    out_of_office = EmailMessage()
    out_of_office["Subject"], out_of_office["From"] = "Out of office", "pat@c1.example"
    out_of_office.set_content("Back on Monday.")
    box = write_mbox(tmp_path / "bounces.mbox", [
        dsn(sent["k1"], "Ann@C1.example", when=later),  # the address as the relay spelt it
        dsn("<not-ours@elsewhere.example>", "ann@c1.example"),
        dsn(sent["b1"], "bob@beta.example", action="delayed", status="4.4.1"),  # still trying: nothing yet
        dsn(sent["k2"], "someone@else.example"),  # not the address that message went to
        out_of_office.as_bytes(),
        dsn(sent["k2"], "pat@c1.example").replace(b"Message-ID: " + sent["k2"].encode(), b"X-Gone: 1"),
    ])
    run = read_bounces(store, box, now=NOW + timedelta(days=1))
    assert len(run.recorded) == 1 and "ann@c1.example (C1/k1, invoices): 5.1.1" in run.recorded[0]
    assert [line.split(": ")[0] for line in run.unmatched] == ["bounces.mbox message 2", "bounces.mbox message 4"]
    assert "no message with this Message-ID" in run.unmatched[0] and "not the address on file" in run.unmatched[1]
    assert len(run.skipped) == 2 and "not multipart/report" in run.skipped[1]
    assert len(run.malformed) == 1 and "original Message-ID" in run.malformed[0]
    [bounce] = _bounces(store)
    assert (bounce.message_id, bounce.recipient, bounce.contact_id, bounce.source, bounce.status) == (
        sent["k1"], "ann@c1.example", "k1", "dsn", "5.1.1")
    assert bounce.bounced_at == later and "User unknown" in bounce.diagnostic
    assert len(_bounce_events(store)) == 6  # one per invoice of that message

    again = read_bounces(store, box, now=NOW + timedelta(days=2))
    assert again.recorded == [] and len(again.already) == 1
    assert len(_bounces(store)) == 1 and len(_bounce_events(store)) == 6


def test_a_maildir_with_whole_returned_messages_and_a_forwarded_address(store, sent, tmp_path):
    folder = write_maildir(tmp_path / "Maildir", [
        dsn(sent["b1"], "bob.forward@elsewhere.example", original_recipient="bob@beta.example", headers_only=False,
            when=NOW + timedelta(days=30)),  # a clock far ahead: never later than now
    ])
    run = read_bounces(store, folder, now=NOW + timedelta(hours=1))
    assert len(run.recorded) == 1, run.summary()
    [bounce] = _bounces(store)
    assert (bounce.customer_id, bounce.contact_id, bounce.recipient) == ("C2", "b1", "bob@beta.example")
    assert bounce.bounced_at == NOW + timedelta(hours=1)


def test_a_missing_or_unreadable_path_is_a_clear_error(store, tmp_path):
    with pytest.raises(PortalError, match="no such file or folder"):
        read_bounces(store, tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(PortalError, match="not a Maildir"):
        read_bounces(store, tmp_path / "plain")


def test_cli_reads_bounces_and_fails_cleanly_on_a_missing_path(mail_settings, store, sent, tmp_path):
    from click.testing import CliRunner

    from portal.cli.group import PortalContext
    from portal.cli.main import cli

    box = write_mbox(tmp_path / "bounces.mbox", [dsn(sent["k2"], "pat@c1.example")])
    runner = CliRunner()
    ok = runner.invoke(cli, ["mail", "bounces", str(box)], obj=PortalContext(settings=mail_settings))
    assert ok.exit_code == 0 and "1 bounce(s) recorded, 0 already recorded" in ok.output
    missing = runner.invoke(cli, ["mail", "bounces", str(tmp_path / "nowhere.mbox")],
                            obj=PortalContext(settings=mail_settings))
    assert missing.exit_code == 1 and "no such file or folder" in missing.output
    assert "Traceback" not in missing.output


def test_ses_bounce_notifications_in_json_are_matched_by_ses_message_id(store, ledger, tmp_path):
    import json

    from portal.store.mail import SentRow, record_sent

    ses_id = "0102015fd91a5ca3-93c245fe"
    with store.begin() as conn:  # what the SES transport records for a message SES accepted
        record_sent(conn, "reminder", f"<{ses_id}@eu-west-1.amazonses.com>", NOW,
                    [SentRow("C1", "k1", "I-OD5", "h"), SentRow("C1", "k1", "I-OD20", "h")])

    def bounce(kind, address="ann@c1.example", message=ses_id):
        return {"notificationType": "Bounce", "mail": {"messageId": message, "destination": [address]},
                "bounce": {"bounceType": kind, "timestamp": "2026-12-01T10:15:00.000Z", "bouncedRecipients": [
                    {"emailAddress": address, "action": "failed", "status": "5.1.1",
                     "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}}

    sns = {"Type": "Notification", "Message": json.dumps(bounce("Permanent"))}  # as SNS delivers it over HTTP
    path = tmp_path / "ses.json"
    path.write_text(json.dumps([sns, bounce("Transient"), bounce("Permanent", message="unknown-id"),
                                {"notificationType": "Delivery"}, {"notificationType": "Bounce"}]))
    run = read_bounces(store, path, now=NOW + timedelta(hours=3))
    assert len(run.recorded) == 1 and len(run.skipped) == 2 and len(run.unmatched) == 1 and len(run.malformed) == 1
    [row] = _bounces(store)
    assert (row.message_id, row.recipient, row.kind, row.source, row.status) == (
        f"<{ses_id}@eu-west-1.amazonses.com>", "ann@c1.example", "reminder", "ses", "5.1.1")
    assert row.bounced_at == datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
    assert sorted(i for _, i, _ in _bounce_events(store)) == ["I-OD20", "I-OD5"]
    lines = tmp_path / "ses.jsonl"  # one notification per line, the same bounce again
    lines.write_text(json.dumps(bounce("Permanent")) + "\n{broken\n")
    again = read_bounces(store, lines, now=NOW + timedelta(hours=4))
    assert len(again.already) == 1 and again.recorded == [] and len(again.malformed) == 1
