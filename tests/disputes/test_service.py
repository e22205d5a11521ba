"""Disputes and questions end to end on SQLite and PostgreSQL: /dispute and /question against the store, every way
of being refused (nothing stored, no file, no email), the staff lifecycle and its email (queued with the re-render,
run by the job worker), the pages that show the dispute, /pay holding the disputed part back, the reports. The
attachments' checks and private storage: tests/disputes/test_attachments.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Request
from sqlalchemy import update
from werkzeug.datastructures import MultiDict
from werkzeug.test import encode_multipart

from portal.core.signing import Signer
from portal.disputes import service
from portal.disputes.attachments import attachment_for_staff
from portal.disputes.errors import DisputeRefused
from portal.jobs.worker import Worker
from portal.staff.disputes_report import (
    DISPUTE_COLUMNS,
    ROOT_CAUSE_COLUMNS,
    dispute_root_causes,
    disputes,
    format_disputes,
    format_root_causes,
)
from portal.store import disputes as disputestore
from portal.store import jobqueue
from portal.store.tables import invoices
from tests.dispute_helpers import (
    EVIL,
    PDF,
    PNG,
    amount_text,
    assert_nothing_stored,
    assert_nowhere_in_the_site,
    count_rows,
    customer_with_invoices,
    invoice_page,
    other_customers_invoice,
    page_token,
    post_dispute,
)
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import make_app, outbox_messages


def review(app, store, dispute_id, by):
    """What the staff dashboard does: the domain's change, then the queued jobs run."""
    row = service.review(store, dispute_id, by)
    app.extensions["jobs"].wait()
    return row


def resolve(app, store, dispute_id, outcome, note, by):
    row = service.resolve(store, dispute_id, outcome, note, by)
    app.extensions["jobs"].wait()
    return row


# --- a dispute that goes through ---------------------------------------------------------------------------


def test_a_dispute_with_attachments_round_trips_to_storage_pages_email_and_report(client, app, store, built,
                                                                                   tmp_path):
    customer, invs = customer_with_invoices(store)
    inv = invs[0]
    part = inv.balance // 2
    response = post_dispute(client, built, customer.customer_id, [inv.invoice_id],
                            files=[("delivery note.pdf", PDF), ("photo.png", PNG)], reason="damaged",
                            message="Two boxes arrived crushed",
                            **{f"dispute_amount-{inv.invoice_id}": amount_text(part)})
    assert response.status_code == 200, response.text
    [row] = disputes(store)
    reference = f"D-{row['dispute_id']}"
    assert reference in response.text and "Dispute received" in response.text
    assert (row["customer_id"], row["invoice_ids"], row["reason"], row["amount"], row["status"]) == \
        (customer.customer_id, [inv.invoice_id], "damaged", part, "open")
    with store.begin() as conn:
        files = disputestore.attachments_of(conn, row["dispute_id"])
    assert [(f.n, f.filename, f.content_type, f.size) for f in files] == \
        [(1, "delivery_note.pdf", "application/pdf", len(PDF)), (2, "photo.png", "image/png", len(PNG))]
    assert files[0].path == f"disputes/{row['dispute_id']}/1-delivery_note.pdf"
    assert (Path(built.effective_private_target) / files[0].path).read_bytes() == PDF
    assert attachment_for_staff(store, built, row["dispute_id"], 2) == PNG
    assert_nowhere_in_the_site(built, PDF, PNG)
    app.extensions["jobs"].wait()
    # The collector hears about it; the customer's pages show it and hold the disputed part back from paying.
    [mail] = outbox_messages(tmp_path)
    assert mail["To"] == (customer.collector or "ar-team@example.com") and reference in mail["Subject"]
    assert "Two boxes arrived crushed" in mail.get_body(("plain",)).get_content()
    for folder in (built.target,):  # published straight to the target: the build folder is the nightly's
        page = invoice_page(built, customer.customer_id, inv.invoice_id, folder)
        assert 'badge-disputed">In dispute<' in page and f"Dispute {reference}" in page
    causes = dispute_root_causes(store)
    assert causes["count"] == 1 and causes["by_reason"][0]["reason"] == "damaged"
    assert causes["by_reason"][0]["amount"] == part and causes["median_days_to_resolve"] is None


def test_several_invoices_from_the_account_page_default_to_what_is_open(client, app, store, built):
    customer, invs = customer_with_invoices(store)
    ids = [invs[0].invoice_id, invs[1].invoice_id]
    assert post_dispute(client, built, customer.customer_id, ids, reason="duplicate_billing").status_code == 200
    [row] = disputes(store)
    assert sorted(row["invoice_ids"]) == sorted(ids) and row["amount"] == invs[0].balance + invs[1].balance
    # Disputed in full: a second dispute of the same invoice has nothing left to dispute.
    again = post_dispute(client, built, customer.customer_id, ids[:1])
    assert again.status_code == 400 and "nothing left to dispute" in again.text


def test_review_then_resolve_emails_the_contacts_and_feeds_the_root_cause_report(client, app, store, built,
                                                                                tmp_path):
    customer, invs = customer_with_invoices(store)
    post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], reason="tax")
    app.extensions["jobs"].wait()
    [row] = disputes(store)
    assert review(app, store, row["dispute_id"], "staff@example.com").status == "under_review"
    page = invoice_page(built, customer.customer_id, invs[0].invoice_id, built.target)
    assert 'badge-disputed">In dispute · under review<' in page
    done = resolve(app, store, row["dispute_id"], "credit_issued", f"Credit note CN-9 issued {EVIL}",
                   "staff@example.com")
    assert (done.status, done.outcome) == ("resolved", "credit_issued")
    with pytest.raises(DisputeRefused):
        resolve(app, store, row["dispute_id"], "rejected", "", "staff@example.com")
    resolved_mails = [m for m in outbox_messages(tmp_path) if "resolved" in m["Subject"]]
    _, contacts = store.customer_contacts(customer.customer_id)
    billing = {c.email for c in contacts if c.role == "billing"} or {c.email for c in contacts}
    assert {m["To"].addresses[0].addr_spec for m in resolved_mails} == billing
    html = resolved_mails[0].get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;script&gt;" in html and "Credit issued" in html
    [report] = disputes(store)
    assert (report["status"], report["outcome"]) == ("resolved", "credit_issued") and report["resolved_at"]
    causes = dispute_root_causes(store)
    assert causes["median_days_to_resolve"] is not None
    assert causes["by_reason"][0]["outcomes"] == {"credit_issued": 1}
    page = invoice_page(built, customer.customer_id, invs[0].invoice_id, built.target)  # re-rendered and published
    assert "Dispute resolved: credit issued." in page and "badge-disputed" not in page
    # Resolved: the amount is no longer held back.
    with store.begin() as conn:
        assert disputestore.disputed_amounts(conn, invoice_ids=[invs[0].invoice_id]) == {}


def _resolution_mails(tmp_path):
    return [m for m in outbox_messages(tmp_path) if "resolved" in m["Subject"]]


def _jobs(store):
    with store.begin() as conn:
        return [(r.kind, r.state) for r in conn.execute(jobqueue.jobs.select().order_by(jobqueue.jobs.c.job_id))]


def test_the_disputes_domain_renders_nothing_and_queues_the_re_render_before_the_email(client, app, store, built,
                                                                                       tmp_path):
    """The cycle disputes -> republish -> build -> pages -> disputes is gone: the domain changes the state and
    queues, in the same transaction, the re-render and then the email; the worker runs them in that order."""
    customer, invs = customer_with_invoices(store)
    post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], reason="tax")
    app.extensions["jobs"].wait()
    app.extensions["jobs"].shutdown()  # nothing runs the queue in the background from here on
    [row] = disputes(store)
    published = invoice_page(built, customer.customer_id, invs[0].invoice_id, built.target)
    before = _jobs(store)
    service.review(store, row["dispute_id"], "staff@example.com")
    service.review(store, row["dispute_id"], "staff@example.com")  # no change: nothing more queued
    assert _jobs(store)[len(before):] == [("refresh", "queued")]
    done = service.resolve(store, row["dispute_id"], "rejected", "As agreed.", "staff@example.com")
    assert done.status == "resolved"
    # Coalesced with the review's refresh, which is still queued, and ahead of the email.
    assert _jobs(store)[len(before):] == [("refresh", "queued"), ("resolution_mail", "queued")]
    assert invoice_page(built, customer.customer_id, invs[0].invoice_id, built.target) == published
    assert not _resolution_mails(tmp_path)
    sent_when_rendered = []
    worker = Worker(built, store, transport=app.extensions["portal"].mailer)
    first = worker.run_next()
    sent_when_rendered.append(len(_resolution_mails(tmp_path)))
    assert first.job.kind == "refresh" and first.ok and sent_when_rendered == [0]
    assert "Dispute resolved" in invoice_page(built, customer.customer_id, invs[0].invoice_id, built.target)
    assert worker.run_next().job.kind == "resolution_mail" and _resolution_mails(tmp_path)
    assert worker.run_next() is None


def test_a_failed_republish_is_retried_and_the_resolution_stands(client, app, store, built, tmp_path, caplog):
    customer, invs = customer_with_invoices(store)
    post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], reason="tax")
    app.extensions["jobs"].wait()
    app.extensions["jobs"].shutdown()
    [row] = disputes(store)
    done = service.resolve(store, row["dispute_id"], "rejected", "As agreed.", "staff@example.com")
    unpublishable = built.replace(target="ftp://nowhere/site")  # the publish after the re-render fails
    worker = Worker(unpublishable, store, transport=app.extensions["portal"].mailer)
    with caplog.at_level("WARNING", logger="portal.jobs.worker"):
        outcomes = worker.drain()
    assert done.status == "resolved" and disputes(store)[0]["status"] == "resolved"
    assert [(o.job.kind, o.ok) for o in outcomes] == [("refresh", False), ("resolution_mail", True)]
    assert "retried later" in caplog.text and "ftp://nowhere/site" in caplog.text
    assert _jobs(store)[-2:] == [("refresh", "queued"), ("resolution_mail", "done")]  # the refresh comes back
    assert _resolution_mails(tmp_path)  # the customer is told all the same


def test_a_question_is_stored_and_mailed_to_the_collector_escaped(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    response = client.post("/question", data={"page_token": page_token(built, customer.customer_id),
                                              "invoice": invs[0].invoice_id, "message": EVIL})
    assert response.status_code == 200 and "Question received" in response.text
    assert EVIL not in response.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in response.text
    app.extensions["jobs"].wait()
    assert count_rows(store, disputestore.questions) == 1
    [mail] = outbox_messages(tmp_path)
    assert mail["Subject"].startswith("Question Q-")
    html = mail.get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_a_message_with_html_is_escaped_on_the_confirmation_in_the_email_and_never_on_the_page(
        client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], message=EVIL)
    assert response.status_code == 200
    assert EVIL not in response.text and "&lt;b&gt;bold&lt;/b&gt;" in response.text
    app.extensions["jobs"].wait()
    [mail] = outbox_messages(tmp_path)
    html = mail.get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;script&gt;" in html
    page = invoice_page(built, customer.customer_id, invs[0].invoice_id, built.target)
    assert "<script>alert" not in page and "<b>bold</b>" not in page


# --- refusals: nothing stored, no file, no email -----------------------------------------------------------


def test_an_amount_larger_than_open_is_refused(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    inv = invs[0]
    response = post_dispute(client, built, customer.customer_id, [inv.invoice_id], files=[("a.pdf", PDF)],
                            **{f"dispute_amount-{inv.invoice_id}": amount_text(inv.balance + 1)})
    assert response.status_code == 400 and "at most" in response.text
    assert_nothing_stored(store, built, app, tmp_path)


def test_another_customers_invoice_is_refused(client, app, store, built, tmp_path):
    customer, _ = customer_with_invoices(store)
    other = other_customers_invoice(store, customer.customer_id)
    response = post_dispute(client, built, customer.customer_id, [other.invoice_id], files=[("a.pdf", PDF)])
    assert response.status_code == 400 and "not on your account" in response.text
    assert_nothing_stored(store, built, app, tmp_path)


def test_a_form_replayed_after_the_invoice_was_paid_is_refused(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    with store.begin() as conn:  # the next export says: paid, closed
        conn.execute(update(invoices).where(invoices.c.invoice_id == invs[0].invoice_id)
                     .values(balance=0, is_open=False))
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("a.pdf", PDF)])
    assert response.status_code == 400 and "no longer open" in response.text
    assert_nothing_stored(store, built, app, tmp_path)


@pytest.mark.parametrize("form", [{"reason": "not-a-reason"}, {"message": "   "}],
                         ids=["unknown-reason", "empty-message"])
def test_a_missing_reason_or_message_is_refused(client, app, store, built, tmp_path, form):
    customer, invs = customer_with_invoices(store)
    response = post_dispute(client, built, customer.customer_id, [invs[0].invoice_id], **form)
    assert response.status_code == 400
    assert_nothing_stored(store, built, app, tmp_path)


def test_a_forged_or_revoked_token_is_a_plain_404_and_stores_nothing(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    data = {"page_token": page_token(built, customer.customer_id) + "x", "dispute_invoice": invs[0].invoice_id,
            "reason": "tax", "message": "m"}
    assert client.post("/dispute", data=data).status_code == 404
    store.revoke(customer.customer_id)
    assert post_dispute(client, built, customer.customer_id, [invs[0].invoice_id]).status_code == 404
    assert_nothing_stored(store, built, app, tmp_path)


def test_the_dispute_body_is_parsed_only_after_the_token_and_the_rate_limit(built, store, tmp_path, monkeypatch):
    """Up to 50 MB of files: a forged token, or one over its rate limit, must not cost a parse of the body. Here
    the body holds more parts than any parser takes (werkzeug refuses it, 413), so an answer about the token
    shows that the body was never parsed."""
    parsed = []
    make_parser = Request.make_form_data_parser
    monkeypatch.setattr(Request, "make_form_data_parser", lambda self: parsed.append(1) or make_parser(self))
    customer, invs = customer_with_invoices(store)
    forged = Signer(built.replace(secret_key="not-our-secret-0123456789")).page_token("page", customer.customer_id, 1)

    def post(client, token):
        fields = MultiDict([("page_token", token), ("dispute_invoice", invs[0].invoice_id), ("reason", "tax"),
                            *[(f"filler{n}", "x") for n in range(1500)]])
        boundary, body = encode_multipart(fields)
        return client.post("/dispute", data=body, content_type=f"multipart/form-data; boundary={boundary}")

    with make_app(built, tmp_path, RATE_LIMIT_TOKEN="1/60") as app:
        client = app.test_client()
        assert post(client, forged).status_code == 404 and parsed == []
        assert post(client, "not.a-token!").status_code == 404 and parsed == []
        assert post(client, page_token(built, customer.customer_id)).status_code == 413 and parsed == [1]
        assert post(client, page_token(built, customer.customer_id)).status_code == 429 and parsed == [1]
    assert count_rows(store, disputestore.disputes) == 0


def test_a_dispute_form_whose_first_field_is_not_the_token_is_refused(client, app, store, built, tmp_path):
    customer, invs = customer_with_invoices(store)
    fields = MultiDict([("dispute_invoice", invs[0].invoice_id),
                        ("page_token", page_token(built, customer.customer_id)), ("reason", "tax"), ("message", "m")])
    boundary, body = encode_multipart(fields)
    response = client.post("/dispute", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 404
    assert_nothing_stored(store, built, app, tmp_path)


# --- /pay holds the disputed part back ------------------------------------------------------------------------


@pytest.fixture
def standin():
    server = StripeStandIn().start()
    yield server
    server.stop()


def test_pay_refuses_what_is_in_dispute(store, built, standin, tmp_path):
    paying = built.replace(stripe_secret_key="sk_test_standin", stripe_webhook_secret="whsec_test_0123456789abcdef",
                           stripe_api_base=standin.base)
    with make_app(paying, tmp_path) as app:
        client = app.test_client()
        customer, invs = customer_with_invoices(store)
        whole, partly = invs[0], invs[1]
        post_dispute(client, paying, customer.customer_id, [whole.invoice_id])
        post_dispute(client, paying, customer.customer_id, [partly.invoice_id], **{
            f"dispute_amount-{partly.invoice_id}": amount_text(partly.balance - 100)})
        app.extensions["jobs"].wait()
        token = page_token(paying, customer.customer_id)
        full = client.post("/pay", data={"page_token": token, "invoice": whole.invoice_id, "method": "card"})
        assert full.status_code == 400 and "in dispute in full" in full.text
        blank = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card"})
        assert blank.status_code == 400 and "at most" in blank.text
        assert standin.creates() == []
        ok = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card",
                                       f"amount-{partly.invoice_id}": "1.00"})
        assert ok.status_code == 303
        page = invoice_page(paying, customer.customer_id, partly.invoice_id, paying.target)
        assert 'value="1.00"' in page


def test_a_revoked_page_gets_a_plain_404_from_pay_not_the_dispute_holds_live_balance(store, built, standin,
                                                                                     tmp_path):
    paying = built.replace(stripe_secret_key="sk_test_standin", stripe_webhook_secret="whsec_test_0123456789abcdef",
                           stripe_api_base=standin.base)
    with make_app(paying, tmp_path) as app:
        client = app.test_client()
        customer, invs = customer_with_invoices(store)
        partly = invs[1]
        post_dispute(client, paying, customer.customer_id, [partly.invoice_id], **{
            f"dispute_amount-{partly.invoice_id}": amount_text(partly.balance - 100)})
        app.extensions["jobs"].wait()
        token = page_token(paying, customer.customer_id)
        held = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card"})
        assert held.status_code == 400 and "at most" in held.text  # the guard speaks to the customer's own page
        store.revoke(customer.customer_id)
        for form in ({}, {f"amount-{partly.invoice_id}": amount_text(partly.balance)}):
            answer = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card",
                                               **form})
            assert answer.status_code == 404, answer.text
            assert "at most" not in answer.text and "dispute" not in answer.text.lower()
            assert amount_text(100) not in answer.text and partly.number not in answer.text
        assert standin.creates() == []


# --- report formats ----------------------------------------------------------------------------------------


def test_the_dispute_reports_format_as_json_csv_and_table(client, app, store, built):
    customer, invs = customer_with_invoices(store)
    post_dispute(client, built, customer.customer_id, [invs[0].invoice_id, invs[1].invoice_id], reason="po_mismatch")
    rows = disputes(store)
    assert json.loads(format_disputes(rows, "json"))[0]["invoice_ids"] == rows[0]["invoice_ids"]
    header, line = format_disputes(rows, "csv").splitlines()
    assert header.split(",") == DISPUTE_COLUMNS and ";".join(rows[0]["invoice_ids"]) in line
    assert "po_mismatch" in format_disputes(rows, "table") and "1 dispute(s)." in format_disputes(rows, "table")
    causes = dispute_root_causes(store)
    csv_lines = format_root_causes(causes, "csv").splitlines()
    assert csv_lines[0].split(",") == ROOT_CAUSE_COLUMNS
    assert csv_lines[1].startswith(f"by_reason,po_mismatch,{invs[0].currency},1,{rows[0]['amount']},1,0,")
    assert json.loads(format_root_causes(causes, "json"))["count"] == 1
    assert "median days to resolve: -" in format_root_causes(causes, "table")
    with pytest.raises(ValueError):
        format_disputes(rows, "xml")
