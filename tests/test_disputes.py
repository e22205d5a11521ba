"""Disputes and questions end to end on SQLite and PostgreSQL: /dispute and /question against the store, the
private attachment storage, every way of being refused (nothing stored, no file, no email), the staff
lifecycle and its email, the pages that show the dispute, /pay holding the disputed part back, the reports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from flask import Request
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from portal.build.pages import invoice_slug
from portal.build.pipeline import build
from portal.core.config import warn_if_insecure
from portal.core.errors import ConfigError
from portal.core.signing import Signer
from portal.disputes.service import DisputeRefused, attachment_for_staff, resolve, review, safe_name, sniff
from portal.staff.reports import (
    DISPUTE_COLUMNS,
    ROOT_CAUSE_COLUMNS,
    dispute_root_causes,
    disputes,
    format_disputes,
    format_root_causes,
)
from portal.staff.users import add_user
from portal.store import disputes as disputestore
from portal.store.database import invoices
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import hidden_field, make_app, outbox_messages

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EVIL = "<script>alert('x')</script> & <b>bold</b>"


@pytest.fixture
def dsettings(settings, tmp_path):
    return settings.replace(build_dir=str(tmp_path / "build"), target=str(tmp_path / "published"),
                            mail_url=f"outbox:{tmp_path / 'outbox'}", ar_inbox="ar-team@example.com")


@pytest.fixture
def built(dsettings, store, export_dir):
    build(export_dir, dsettings.build_dir, dsettings, store, workers=1)
    return dsettings


@pytest.fixture
def app(built, tmp_path):
    with make_app(built, tmp_path, site_dir=Path(built.target)) as app:
        yield app
        app.extensions["jobs"].wait()


@pytest.fixture
def client(app):
    return app.test_client()


def _customer(store, n=2):
    """(customer, its open invoices) of a customer with at least `n` open invoices in one currency."""
    for data in store.customer_data():
        if len(data.invoices) >= n and len({i.currency for i in data.invoices}) == 1:
            return data.customer, data.invoices
    raise AssertionError("no customer with enough invoices in the sample")


def _other_invoice(store, customer_id):
    return next(i for d in store.customer_data() if d.customer.customer_id != customer_id for i in d.invoices)


def _token(settings, customer_id):
    return Signer(settings).page_token("page", customer_id, 1)


def _dispute(client, settings, customer_id, invoice_ids, files=(), reason="pricing", message="Wrong unit price",
             **form):
    data = {"page_token": _token(settings, customer_id), "dispute_invoice": list(invoice_ids), "reason": reason,
            "message": message, **form}
    if files:
        data["attachment"] = [FileStorage(io.BytesIO(content), name, content_type="application/pdf")
                              for name, content in files]
    # Encoded in memory: the test client spools large bodies to a temporary file it never closes.
    boundary, body = encode_multipart(MultiDict([(k, v) for k, values in data.items()
                                                 for v in (values if isinstance(values, list) else [values])]))
    return client.post("/dispute", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def _count(store, table):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _nothing_stored(store, built, app, tmp_path):
    app.extensions["jobs"].wait()
    assert _count(store, disputestore.disputes) == 0
    assert _count(store, disputestore.dispute_invoices) == 0
    assert _count(store, disputestore.dispute_attachments) == 0
    private = Path(built.effective_private_target) / "disputes"
    assert not private.exists() or not any(private.rglob("*"))
    assert outbox_messages(tmp_path) == []


def _nowhere_in_the_site(settings, *contents):
    """No file of the site folders (what a static host serves) holds any of `contents`."""
    for folder in (settings.target, settings.build_dir):
        for path in Path(folder).rglob("*"):
            assert not (path.is_file() and path.read_bytes() in contents), path
        assert not (Path(folder) / "disputes").exists()


def _page(settings, customer_id, invoice_id, folder):
    key = Signer(settings).customer_key(customer_id, 1)
    return (Path(folder) / "c" / key / "i" / f"{invoice_slug(invoice_id)}.html").read_text()


def _amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


# --- a dispute that goes through ---------------------------------------------------------------------------


def test_a_dispute_with_attachments_round_trips_to_storage_pages_email_and_report(client, app, store, built,
                                                                                   tmp_path):
    customer, invs = _customer(store)
    inv = invs[0]
    part = inv.balance // 2
    response = _dispute(client, built, customer.customer_id, [inv.invoice_id],
                        files=[("delivery note.pdf", PDF), ("photo.png", PNG)], reason="damaged",
                        message="Two boxes arrived crushed", **{f"dispute_amount-{inv.invoice_id}": _amount(part)})
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
    _nowhere_in_the_site(built, PDF, PNG)
    app.extensions["jobs"].wait()
    # The collector hears about it; the customer's pages show it and hold the disputed part back from paying.
    [mail] = outbox_messages(tmp_path)
    assert mail["To"] == (customer.collector or "ar-team@example.com") and reference in mail["Subject"]
    assert "Two boxes arrived crushed" in mail.get_body(("plain",)).get_content()
    for folder in (built.build_dir, built.target):
        page = _page(built, customer.customer_id, inv.invoice_id, folder)
        assert 'badge-disputed">In dispute<' in page and f"Dispute {reference}" in page
    causes = dispute_root_causes(store)
    assert causes["count"] == 1 and causes["by_reason"][0]["reason"] == "damaged"
    assert causes["by_reason"][0]["amount"] == part and causes["median_days_to_resolve"] is None


def test_several_invoices_from_the_account_page_default_to_what_is_open(client, app, store, built):
    customer, invs = _customer(store)
    ids = [invs[0].invoice_id, invs[1].invoice_id]
    assert _dispute(client, built, customer.customer_id, ids, reason="duplicate_billing").status_code == 200
    [row] = disputes(store)
    assert sorted(row["invoice_ids"]) == sorted(ids) and row["amount"] == invs[0].balance + invs[1].balance
    # Disputed in full: a second dispute of the same invoice has nothing left to dispute.
    again = _dispute(client, built, customer.customer_id, ids[:1])
    assert again.status_code == 400 and "nothing left to dispute" in again.text


def test_review_then_resolve_emails_the_contacts_and_feeds_the_root_cause_report(client, app, store, built,
                                                                                tmp_path):
    customer, invs = _customer(store)
    _dispute(client, built, customer.customer_id, [invs[0].invoice_id], reason="tax")
    app.extensions["jobs"].wait()
    [row] = disputes(store)
    assert review(store, row["dispute_id"], "staff@example.com", settings=built).status == "under_review"
    page = _page(built, customer.customer_id, invs[0].invoice_id, built.target)
    assert 'badge-disputed">In dispute · under review<' in page
    done = resolve(store, row["dispute_id"], "credit_issued", f"Credit note CN-9 issued {EVIL}", "staff@example.com",
                   settings=built)
    assert (done.status, done.outcome) == ("resolved", "credit_issued")
    with pytest.raises(DisputeRefused):
        resolve(store, row["dispute_id"], "rejected", "", "staff@example.com", settings=built)
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
    page = _page(built, customer.customer_id, invs[0].invoice_id, built.target)  # re-rendered and published
    assert "Dispute resolved: credit issued." in page and "badge-disputed" not in page
    # Resolved: the amount is no longer held back.
    with store.begin() as conn:
        assert disputestore.disputed_amounts(conn, invoice_ids=[invs[0].invoice_id]) == {}


def test_a_question_is_stored_and_mailed_to_the_collector_escaped(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    response = client.post("/question", data={"page_token": _token(built, customer.customer_id),
                                              "invoice": invs[0].invoice_id, "message": EVIL})
    assert response.status_code == 200 and "Question received" in response.text
    assert EVIL not in response.text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in response.text
    app.extensions["jobs"].wait()
    assert _count(store, disputestore.questions) == 1
    [mail] = outbox_messages(tmp_path)
    assert mail["Subject"].startswith("Question Q-")
    html = mail.get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_a_message_with_html_is_escaped_on_the_confirmation_in_the_email_and_never_on_the_page(
        client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id], message=EVIL)
    assert response.status_code == 200
    assert EVIL not in response.text and "&lt;b&gt;bold&lt;/b&gt;" in response.text
    app.extensions["jobs"].wait()
    [mail] = outbox_messages(tmp_path)
    html = mail.get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;script&gt;" in html
    page = _page(built, customer.customer_id, invs[0].invoice_id, built.target)
    assert "<script>alert" not in page and "<b>bold</b>" not in page


# --- refusals: nothing stored, no file, no email -----------------------------------------------------------


def test_an_oversize_file_is_413_and_nothing_is_stored(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    big = PDF + b"0" * (10 * 1024 * 1024)
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("big.pdf", big)])
    assert response.status_code == 413 and "larger than 10 MB" in response.text
    _nothing_stored(store, built, app, tmp_path)


@pytest.mark.parametrize("content", [b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64,
                                     b"<!doctype html><script>alert(1)</script>",
                                     b"\x7fELF\x02\x01\x01" + b"\x00" * 32],
                         ids=["windows-executable", "html", "elf"])
def test_a_file_named_pdf_that_is_not_one_is_refused(client, app, store, built, tmp_path, content):
    customer, invs = _customer(store)
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("invoice.pdf", content)])
    assert response.status_code == 400 and "is not a PDF, PNG or JPEG" in response.text
    _nothing_stored(store, built, app, tmp_path)


def test_a_path_traversal_filename_is_sanitised(client, app, store, built):
    customer, invs = _customer(store)
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id],
                        files=[("../../c/index.html/..\\..\\evil.pdf", PDF)])
    assert response.status_code == 200
    [row] = disputes(store)
    with store.begin() as conn:
        [stored] = disputestore.attachments_of(conn, row["dispute_id"])
    assert stored.filename == "evil.pdf" and stored.path == f"disputes/{row['dispute_id']}/1-evil.pdf"
    private = Path(built.effective_private_target)
    assert [p.relative_to(private).as_posix() for p in (private / "disputes").rglob("*") if p.is_file()] == \
        [stored.path]
    assert not list(private.parent.glob("**/evil.pdf"))[1:]


def test_attachments_live_outside_the_site_folders_and_staff_still_download_them(client, app, store, built,
                                                                                  tmp_path):
    """They were written into the published folder (disputes/<n>/<name>, guessable): any static host serving
    that folder served them to anyone."""
    customer, invs = _customer(store)
    assert _dispute(client, built, customer.customer_id, [invs[0].invoice_id],
                    files=[("signed delivery.pdf", PDF)]).status_code == 200
    [row] = disputes(store)
    app.extensions["jobs"].wait()  # the re-render and publish of the customer's pages
    _nowhere_in_the_site(built, PDF)
    assert Path(built.effective_private_target).resolve() == tmp_path / "private"  # the default, beside the site
    assert attachment_for_staff(store, built, row["dispute_id"], 1) == PDF
    add_user(store, "staff@example.com", "correct horse battery staple", "viewer")
    staff = app.test_client()
    form = staff.get("/staff/login").get_data(as_text=True)
    staff.post("/staff/login", data={"email": "staff@example.com", "password": "correct horse battery staple",
                                     "csrf_token": hidden_field(form, "csrf_token")})
    got = staff.get(f"/staff/disputes/{row['dispute_id']}/attachments/1")
    assert got.status_code == 200 and got.data == PDF


def test_a_private_folder_inside_the_site_is_refused_and_old_attachments_are_pointed_out(settings, tmp_path,
                                                                                       caplog):
    site = tmp_path / "site"
    for inside in (site / "private", site, site / "c" / "x"):
        with pytest.raises(ConfigError, match="private_target.*inside target"):
            settings.replace(target=str(site), build_dir=str(tmp_path / "build"), private_target=str(inside))
    with pytest.raises(ConfigError, match="inside build_dir"):
        settings.replace(build_dir=str(tmp_path), private_target=str(tmp_path / "private"))
    with pytest.raises(ConfigError, match="inside what the site serves"):
        settings.replace(target="s3://bucket/site", private_target="s3://bucket/site/docs/private")
    assert settings.replace(target="s3://bucket/site").effective_private_target == "s3://bucket/site"
    # Attachments an older version left in the site folder are not moved: every start says where they are.
    (site / "disputes" / "3").mkdir(parents=True)
    (site / "disputes" / "3" / "1-scan.pdf").write_bytes(PDF)
    ok = settings.replace(target=str(site), build_dir=str(site), private_target=str(tmp_path / "vault"))
    with caplog.at_level("WARNING", logger="portal.core.config"):
        warn_if_insecure(ok)
    assert f"dispute attachments are in the site folder {site / 'disputes'}" in caplog.text
    assert str(tmp_path / "vault") in caplog.text


def test_safe_names_and_sniffing():
    assert safe_name("..\\..//etc/passwd", ".pdf") == "passwd.pdf"
    assert safe_name("résumé scan.JPEG", ".jpg") == "resume_scan.jpg"
    assert safe_name("...", ".png") == "attachment.png"
    assert sniff(b"\xff\xd8\xff\xe0rest") == ("image/jpeg", ".jpg") and sniff(b"GIF89a") is None


def test_an_amount_larger_than_open_is_refused(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    inv = invs[0]
    response = _dispute(client, built, customer.customer_id, [inv.invoice_id], files=[("a.pdf", PDF)],
                        **{f"dispute_amount-{inv.invoice_id}": _amount(inv.balance + 1)})
    assert response.status_code == 400 and "at most" in response.text
    _nothing_stored(store, built, app, tmp_path)


def test_another_customers_invoice_is_refused(client, app, store, built, tmp_path):
    customer, _ = _customer(store)
    other = _other_invoice(store, customer.customer_id)
    response = _dispute(client, built, customer.customer_id, [other.invoice_id], files=[("a.pdf", PDF)])
    assert response.status_code == 400 and "not on your account" in response.text
    _nothing_stored(store, built, app, tmp_path)


def test_a_form_replayed_after_the_invoice_was_paid_is_refused(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    with store.begin() as conn:  # the next export says: paid, closed
        conn.execute(update(invoices).where(invoices.c.invoice_id == invs[0].invoice_id)
                     .values(balance=0, is_open=False))
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("a.pdf", PDF)])
    assert response.status_code == 400 and "no longer open" in response.text
    _nothing_stored(store, built, app, tmp_path)


@pytest.mark.parametrize("form", [{"reason": "not-a-reason"}, {"message": "   "}],
                         ids=["unknown-reason", "empty-message"])
def test_a_missing_reason_or_message_is_refused(client, app, store, built, tmp_path, form):
    customer, invs = _customer(store)
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id], **form)
    assert response.status_code == 400
    _nothing_stored(store, built, app, tmp_path)


def test_more_than_five_files_are_refused(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    response = _dispute(client, built, customer.customer_id, [invs[0].invoice_id],
                        files=[(f"{n}.pdf", PDF) for n in range(6)])
    assert response.status_code == 400 and "At most 5 files" in response.text
    _nothing_stored(store, built, app, tmp_path)


def test_a_forged_or_revoked_token_is_a_plain_404_and_stores_nothing(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    data = {"page_token": _token(built, customer.customer_id) + "x", "dispute_invoice": invs[0].invoice_id,
            "reason": "tax", "message": "m"}
    assert client.post("/dispute", data=data).status_code == 404
    store.revoke(customer.customer_id)
    assert _dispute(client, built, customer.customer_id, [invs[0].invoice_id]).status_code == 404
    _nothing_stored(store, built, app, tmp_path)


def test_the_dispute_body_is_parsed_only_after_the_token_and_the_rate_limit(built, store, tmp_path, monkeypatch):
    """Up to 50 MB of files: a forged token, or one over its rate limit, must not cost a parse of the body. Here
    the body holds more parts than any parser takes (werkzeug refuses it, 413), so an answer about the token
    shows that the body was never parsed."""
    parsed = []
    make_parser = Request.make_form_data_parser
    monkeypatch.setattr(Request, "make_form_data_parser", lambda self: parsed.append(1) or make_parser(self))
    customer, invs = _customer(store)
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
        assert post(client, _token(built, customer.customer_id)).status_code == 413 and parsed == [1]
        assert post(client, _token(built, customer.customer_id)).status_code == 429 and parsed == [1]
    assert _count(store, disputestore.disputes) == 0


def test_a_dispute_form_whose_first_field_is_not_the_token_is_refused(client, app, store, built, tmp_path):
    customer, invs = _customer(store)
    fields = MultiDict([("dispute_invoice", invs[0].invoice_id), ("page_token", _token(built, customer.customer_id)),
                        ("reason", "tax"), ("message", "m")])
    boundary, body = encode_multipart(fields)
    response = client.post("/dispute", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 404
    _nothing_stored(store, built, app, tmp_path)


# --- attachments are for staff only ------------------------------------------------------------------------


def test_no_customer_route_reaches_an_attachment(client, app, store, built):
    customer, invs = _customer(store)
    _dispute(client, built, customer.customer_id, [invs[0].invoice_id], files=[("proof.pdf", PDF)])
    [row] = disputes(store)
    path = f"disputes/{row['dispute_id']}/1-proof.pdf"
    assert (Path(built.effective_private_target) / path).is_file()
    # The webhook serves the published folder in development (site_dir): never its private prefix.
    for url in (f"/{path}", f"/c/../{path}", f"/assets/../{path}", f"/files/{path}", f"/d/{path}"):
        response = client.get(url)
        assert response.status_code == 404 and PDF not in response.data, url
    # Customers reach only /dispute; attachments come back only under /staff, which needs a staff login
    # (tests/test_staff_auth.py checks that every /staff route refuses anonymous requests and customer tokens).
    rules = [r for r in app.url_map.iter_rules() if "disput" in r.rule and not r.rule.startswith("/staff/")]
    assert [(r.rule, sorted(r.methods - {"OPTIONS"})) for r in rules] == [("/dispute", ["POST"])]
    anonymous = client.get(f"/staff/disputes/{row['dispute_id']}/attachments/1")
    assert anonymous.status_code == 302 and PDF not in anonymous.data
    with pytest.raises(Exception, match="no attachment"):
        attachment_for_staff(store, built, row["dispute_id"], 9)


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
        customer, invs = _customer(store)
        whole, partly = invs[0], invs[1]
        _dispute(client, paying, customer.customer_id, [whole.invoice_id])
        _dispute(client, paying, customer.customer_id, [partly.invoice_id], **{
            f"dispute_amount-{partly.invoice_id}": _amount(partly.balance - 100)})
        app.extensions["jobs"].wait()
        token = _token(paying, customer.customer_id)
        full = client.post("/pay", data={"page_token": token, "invoice": whole.invoice_id, "method": "card"})
        assert full.status_code == 400 and "in dispute in full" in full.text
        blank = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card"})
        assert blank.status_code == 400 and "at most" in blank.text
        assert standin.creates() == []
        ok = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card",
                                       f"amount-{partly.invoice_id}": "1.00"})
        assert ok.status_code == 303
        page = _page(paying, customer.customer_id, partly.invoice_id, paying.target)
        assert 'value="1.00"' in page


def test_a_revoked_page_gets_a_plain_404_from_pay_not_the_dispute_holds_live_balance(store, built, standin,
                                                                                     tmp_path):
    paying = built.replace(stripe_secret_key="sk_test_standin", stripe_webhook_secret="whsec_test_0123456789abcdef",
                           stripe_api_base=standin.base)
    with make_app(paying, tmp_path) as app:
        client = app.test_client()
        customer, invs = _customer(store)
        partly = invs[1]
        _dispute(client, paying, customer.customer_id, [partly.invoice_id], **{
            f"dispute_amount-{partly.invoice_id}": _amount(partly.balance - 100)})
        app.extensions["jobs"].wait()
        token = _token(paying, customer.customer_id)
        held = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card"})
        assert held.status_code == 400 and "at most" in held.text  # the guard speaks to the customer's own page
        store.revoke(customer.customer_id)
        for form in ({}, {f"amount-{partly.invoice_id}": _amount(partly.balance)}):
            answer = client.post("/pay", data={"page_token": token, "invoice": partly.invoice_id, "method": "card",
                                               **form})
            assert answer.status_code == 404, answer.text
            assert "at most" not in answer.text and "dispute" not in answer.text.lower()
            assert _amount(100) not in answer.text and partly.number not in answer.text
        assert standin.creates() == []


# --- report formats ----------------------------------------------------------------------------------------


def test_the_dispute_reports_format_as_json_csv_and_table(client, app, store, built):
    customer, invs = _customer(store)
    _dispute(client, built, customer.customer_id, [invs[0].invoice_id, invs[1].invoice_id], reason="po_mismatch")
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
