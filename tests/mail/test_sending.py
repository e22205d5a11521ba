"""`portal send` against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL: the messages, their links
through the webhook, no duplicates, changed invoices again, and failures that never count as sent."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from portal.build.pages import invoice_slug
from portal.core.signing import Signer
from portal.mail.sending import send_invoices
from portal.store.mail import mail_sent
from tests.smtpserver import EVIL_NAME, changed, mail_ledger, running_smtp
from tests.webhook_helpers import all_events, make_app

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LINK = re.compile(r"http://127\.0\.0\.1:8000/l/[A-Za-z0-9_.\-]+")


@pytest.fixture
def ledger(store, tmp_path):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    return ledger


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_from="billing@supplier.example", mail_retry_delay_ms=0)


def _sent_rows(store):
    with store.begin() as conn:
        return conn.execute(select(mail_sent).order_by(mail_sent.c.mail_id)).all()


def _email_events(store):
    return [e for e in all_events(store) if e.kind == "email_sent"]


def test_one_message_per_billing_or_approver_contact_with_every_open_invoice(mail_settings, store, ledger, smtp):
    result = send_invoices(mail_settings, store, now=NOW)
    assert result.ok and len(result.having("sent")) == 3
    recipients = [to for to, _ in smtp.recorder.messages]
    assert recipients == [["ann@c1.example"], ["pat@c1.example"], ["bob@beta.example"]]  # never sam (other)
    ann = smtp.messages[0]
    assert ann.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in ann.iter_parts()] == ["text/plain", "text/html"]
    assert ann["From"].addresses[0].addr_spec == "billing@supplier.example"
    assert ann["To"].addresses[0].addr_spec == "ann@c1.example"
    assert ann["Subject"] == "6 invoices from Example Supplies Inc."
    assert ann["List-Unsubscribe"] is None  # invoices are not reminders: nothing to unsubscribe from
    # One email_sent event per invoice, carrying the Message-ID the server received.
    events = [e for e in _email_events(store) if e.contact_id == "k1"]
    assert sorted(e.invoice_id for e in events) == sorted(i for i in ledger.invoices if i.startswith("I-") and
                                                          ledger.invoices[i].customer_id == "C1")
    assert {e.detail for e in events} == {f"invoices {ann['Message-ID']}"}
    assert smtp.messages[2]["Subject"] == "Invoice B-1 from Example Supplies Inc."


def test_links_verify_and_lead_through_the_webhook_to_the_right_page(mail_settings, store, ledger, smtp,
                                                                      settings, tmp_path):
    send_invoices(mail_settings, store, now=NOW)
    bob = smtp.messages[2]
    text = bob.get_body(("plain",)).get_content()
    html = bob.get_body(("html",)).get_content()
    invoice_link, account_link = LINK.findall(text)
    assert f'href="{invoice_link}"' in html and f'href="{account_link}"' in html
    signer = Signer(settings)
    claims = signer.read_link(invoice_link.rsplit("/", 1)[1])
    assert (claims.customer_id, claims.contact_id, claims.invoice_id, claims.key_version) == ("C2", "b1", "I-B1", 1)
    assert signer.read_link(account_link.rsplit("/", 1)[1]).invoice_id == ""
    with make_app(settings, tmp_path) as app:
        response = app.test_client().get(urlparse(invoice_link).path)
    site = f"{settings.site_url}/c/{signer.customer_key('C2', 1)}"
    assert response.status_code == 303
    assert response.headers["Location"] == f"{site}/i/{invoice_slug('I-B1')}.html"
    [opened] = [e for e in all_events(store) if e.kind == "link_opened"]
    assert (opened.customer_id, opened.contact_id, opened.invoice_id) == ("C2", "b1", "I-B1")


def test_every_user_string_is_escaped_in_the_html_part(mail_settings, store, ledger, smtp):
    send_invoices(mail_settings, store, now=NOW)
    ann = smtp.messages[0]
    html = ann.get_body(("html",)).get_content()
    text = ann.get_body(("plain",)).get_content()
    assert EVIL_NAME not in html and "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "<b>Bold</b>" not in html and "&lt;b&gt;Bold&lt;/b&gt;" in html
    assert "<i>" not in html and "INV-SOON&lt;i&gt;" in html
    assert EVIL_NAME in text  # the plain-text part shows the name as it is


def test_no_duplicate_sends_across_runs_and_a_changed_invoice_goes_again(mail_settings, store, ledger, smtp):
    send_invoices(mail_settings, store, now=NOW)
    again = send_invoices(mail_settings, store, now=NOW)
    assert again.messages == [] and len(smtp.messages) == 3
    store.import_snapshot(changed(ledger, "I-OD5", balance=1234))
    third = send_invoices(mail_settings, store, now=NOW)
    assert [(m.contact_id, m.invoice_numbers) for m in third.messages] == [
        ("k1", ["INV-OD5<i>"]), ("k2", ["INV-OD5<i>"])]
    latest = smtp.messages[-1]
    assert "(updated)" in latest.get_body(("plain",)).get_content()
    assert "$12.34" in latest.get_body(("plain",)).get_content()
    assert len([e for e in _email_events(store) if e.invoice_id == "I-OD5"]) == 4


def test_resend_and_customer_filter(mail_settings, store, ledger, smtp):
    send_invoices(mail_settings, store, now=NOW)
    result = send_invoices(mail_settings, store, customer_ids=["C2"], resend=True, now=NOW)
    assert [(m.email, m.status) for m in result.messages] == [("bob@beta.example", "sent")]
    assert len(smtp.messages) == 4


def test_dry_run_sends_and_records_nothing(mail_settings, store, ledger, smtp):
    result = send_invoices(mail_settings, store, dry_run=True, now=NOW)
    assert [m.status for m in result.messages] == ["would send"] * 3
    assert "3 message(s) would send" in result.summary()
    assert smtp.messages == [] and _sent_rows(store) == [] and _email_events(store) == []


def test_smtp_failing_mid_run_marks_nothing_unsent_and_a_rerun_sends_the_rest(mail_settings, store, ledger, smtp):
    smtp.recorder.fail_after = 1  # the relay accepts one message, then answers 451 to everything
    waits: list[float] = []
    result = send_invoices(mail_settings.replace(mail_retry_delay_ms=10), store, now=NOW, sleep=waits.append)
    assert [m.status for m in result.messages] == ["sent", "failed", "not attempted"]
    assert "451" in result.messages[1].error and not result.ok
    assert waits == [0.01, 0.02]  # three tries, doubling waits, then the run stops trying
    assert {r.contact_id for r in _sent_rows(store)} == {"k1"}
    assert {e.contact_id for e in _email_events(store)} == {"k1"}

    smtp.recorder.fail_after = None
    rerun = send_invoices(mail_settings, store, now=NOW)
    assert [(m.contact_id, m.status) for m in rerun.messages] == [("k2", "sent"), ("b1", "sent")]
    assert [to for to, _ in smtp.recorder.messages] == [["ann@c1.example"], ["pat@c1.example"],
                                                        ["bob@beta.example"]]


def test_smtp_server_down_records_nothing(mail_settings, store, ledger, smtp):
    smtp.stop()
    result = send_invoices(mail_settings, store, now=NOW, sleep=lambda _: None)
    assert [m.status for m in result.messages] == ["failed", "not attempted", "not attempted"]
    assert "ConnectionRefusedError" in result.messages[0].error
    assert _sent_rows(store) == [] and _email_events(store) == []


def test_a_refused_address_is_reported_and_the_run_goes_on(mail_settings, store, ledger, smtp):
    smtp.recorder.reject = {"ann@c1.example"}
    waits: list[float] = []
    result = send_invoices(mail_settings, store, now=NOW, sleep=waits.append)
    assert [(m.email, m.status) for m in result.messages] == [
        ("ann@c1.example", "failed"), ("pat@c1.example", "sent"), ("bob@beta.example", "sent")]
    assert "550" in result.messages[0].error and waits == []  # permanent: not retried
    assert "k1" not in {e.contact_id for e in _email_events(store)}
    smtp.recorder.reject = set()
    assert [m.email for m in send_invoices(mail_settings, store, now=NOW).messages] == ["ann@c1.example"]


def _mail_cli(settings):
    """Runs `portal ARGS...` (portal/cli/main.py's group, the mail commands among the rest) with these settings."""
    from click.testing import CliRunner

    from portal.cli.group import PortalContext
    from portal.cli.main import cli

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, list(args), obj=PortalContext(settings=settings), catch_exceptions=False)

    return run


def test_cli_send_dry_run_then_send_then_nothing_left(mail_settings, store, ledger, smtp):
    run = _mail_cli(mail_settings)
    dry = run("send", "--dry-run", "--customer", "C2")
    assert dry.exit_code == 0 and "would send: invoices to bob@beta.example" in dry.output
    assert "1 message(s) would send" in dry.output and smtp.messages == []
    sent = run("send")
    assert sent.exit_code == 0 and "3 message(s) sent, 0 failed" in sent.output
    assert "0 message(s) sent" in run("send").output
    smtp.recorder.reject = {"bob@beta.example"}
    failed = run("send", "--resend", "--customer", "C2")
    assert failed.exit_code == 1 and "failed: invoices to bob@beta.example" in failed.output
    assert run("remind", "--dry-run").exit_code == 0 and run("digest", "--dry-run").exit_code == 0


def test_an_unwritable_outbox_fails_the_run_without_recording(settings, store, ledger, tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    result = send_invoices(settings.replace(mail_url=f"outbox:{tmp_path / 'not-a-folder'}"), store, now=NOW)
    assert [m.status for m in result.messages] == ["failed", "not attempted", "not attempted"]
    assert _sent_rows(store) == [] and _email_events(store) == []


def test_ses_throttling_is_retried_and_a_rejected_message_is_not(settings):
    from botocore.exceptions import ClientError

    from portal.mail.messages import fresh_link_message
    from portal.mail.transport import MailError, SesTransport, send_with_retry

    class Client:
        def __init__(self, codes):
            self.codes, self.calls = list(codes), 0

        def send_raw_email(self, RawMessage):  # noqa: N803 - boto3's argument name
            self.calls += 1
            if self.codes:
                raise ClientError({"Error": {"Code": self.codes.pop(0), "Message": "no"}}, "SendRawEmail")
            return {"MessageId": "abc"}

    def transport(codes):
        ses = SesTransport.__new__(SesTransport)  # no boto3 client: the stand-in answers
        ses.region, ses.client = "eu-west-1", Client(codes)
        return ses

    message = fresh_link_message(settings, ("Ann", "ann@c1.example"), "C1", "http://127.0.0.1:8000/l/x")
    throttled = transport(["Throttling", "Throttling"])
    assert send_with_retry(throttled, message, attempts=3, delay=0, sleep=lambda _: None) == \
        "<abc@eu-west-1.amazonses.com>"
    assert throttled.client.calls == 3
    rejected = transport(["MessageRejected"])
    with pytest.raises(MailError) as failure:
        send_with_retry(rejected, message, attempts=3, delay=0, sleep=lambda _: None)
    assert not failure.value.transient and rejected.client.calls == 1


def test_smtp_server_stopping_mid_run_then_a_rerun_on_a_new_server_sends_the_rest(mail_settings, store, ledger, smtp):
    from portal.mail.transport import transport_from_url

    class StopAfterFirst:
        """The real SMTP transport; the server goes away right after accepting the first message."""

        def __init__(self) -> None:
            self.inner = transport_from_url(smtp.url)

        def send(self, message):
            message_id = self.inner.send(message)
            smtp.stop()
            return message_id

    result = send_invoices(mail_settings, store, now=NOW, transport=StopAfterFirst(), sleep=lambda _: None)
    assert [m.status for m in result.messages] == ["sent", "failed", "not attempted"]
    assert {r.contact_id for r in _sent_rows(store)} == {"k1"}
    for replacement in running_smtp():
        rerun = send_invoices(mail_settings.replace(mail_url=replacement.url), store, now=NOW)
        assert [(m.contact_id, m.status) for m in rerun.messages] == [("k2", "sent"), ("b1", "sent")]
        assert len(replacement.messages) == 2


@pytest.mark.parametrize("command", ["send", "remind", "digest"])
def test_a_second_run_of_a_mail_command_refuses_to_start_while_one_is_in_progress(mail_settings, store, ledger,
                                                                                   smtp, command):
    """Two overlapping runs would both see the same invoices as unsent and both mail them: the second one
    sends nothing and exits 75 (try again later). Other commands are not held up by it."""
    from portal.cli.mail import EXIT_RUN_IN_PROGRESS
    from portal.store.locks import exclusive_run

    run = _mail_cli(mail_settings)
    with exclusive_run(store, command):  # a run of `command` in progress (another session or process)
        refused = run(command)
        assert refused.exit_code == EXIT_RUN_IN_PROGRESS
        assert f"another `portal {command}` run is still in progress" in refused.output
        assert smtp.messages == [] and _sent_rows(store) == []
        assert run(command, "--dry-run").exit_code == 0  # a dry run records nothing and takes no lock
        other = "remind" if command == "send" else "send"
        assert run(other).exit_code == 0
    done = run(command)  # the lock went with the run that held it
    assert done.exit_code == 0 and "in progress" not in done.output
    if command == "send":
        assert "3 message(s) sent" in done.output
