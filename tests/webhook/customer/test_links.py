"""The webhook's links, on SQLite and PostgreSQL: every accepted token records one event, every rejected one
records nothing, and no token reaches another customer's pages or documents."""

from __future__ import annotations

import csv
import sys
import threading
import types
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlparse

import pytest

from portal.core.signing import Signer
from tests.ports import free_port
from tests.test_publish import SHOWN
from tests.webhook_helpers import (
    all_events,
    hidden_field,
    import_sample,
    make_app,
    old_link_token,
    outbox_messages,
    place_documents,
    tamper,
)


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


@pytest.fixture
def app(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def signer(settings):
    return Signer(settings)


def _two_customers(ledger):
    """Two customers that each have a contact, an open invoice and (A) a supplied document."""
    with_docs = sorted({d.customer_id for d in ledger.documents.values()})
    a = with_docs[0]
    billed = {i.customer_id for i in ledger.invoices.values()}
    b = next(c for c in sorted(ledger.customers) if c != a and c in billed)
    return a, b


def _contact(ledger, customer_id):
    return next(c for c in ledger.contacts if c.customer_id == customer_id)


def _invoice(ledger, customer_id):
    return next(i for i in sorted(ledger.invoices.values(), key=lambda i: i.invoice_id)
                if i.customer_id == customer_id)


def _site(settings, signer, customer_id, version=1):
    return f"{settings.site_url}/c/{signer.customer_key(customer_id, version)}"


# --- /l: the emailed link ------------------------------------------------------------------------------


def test_link_records_link_opened_and_redirects_to_the_account_page(client, store, ledger, signer, settings):
    a, _ = _two_customers(ledger)
    contact = _contact(ledger, a)
    token = signer.link_token(a, contact.contact_id, "", 1)
    response = client.get(f"/l/{token}", headers={"User-Agent": "Mail/1.0"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{_site(settings, signer, a)}/index.html"
    [event] = all_events(store)
    assert (event.kind, event.customer_id, event.contact_id, event.invoice_id) == ("link_opened", a,
                                                                                  contact.contact_id, "")
    assert event.ip == "127.0.0.1" and event.user_agent == "Mail/1.0"
    # Written on the hot path (Store.add_event), read back like any event: aware UTC, now.
    assert abs((datetime.now(UTC) - event.occurred_at).total_seconds()) < 60
    store.record_event("email_sent", a, occurred_at=event.occurred_at - timedelta(microseconds=1))
    store.record_event("email_sent", a, occurred_at=event.occurred_at + timedelta(microseconds=1))
    assert store.count_events_since("email_sent", event.occurred_at) == 1  # same text format, same order


def test_link_to_an_open_invoice_lands_on_its_page(client, store, ledger, signer, settings):
    a, _ = _two_customers(ledger)
    invoice = _invoice(ledger, a)
    response = client.get(f"/l/{signer.link_token(a, 'c1', invoice.invoice_id, 1)}")
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"{_site(settings, signer, a)}/i/")
    assert all_events(store)[0].invoice_id == invoice.invoice_id


def test_link_to_a_closed_invoice_lands_on_the_account_page_and_keeps_the_receipt(
        client, store, ledger, signer, settings):
    from dataclasses import replace

    a, _ = _two_customers(ledger)
    invoice = _invoice(ledger, a)
    store.import_snapshot(replace(ledger, invoices={k: v for k, v in ledger.invoices.items()
                                                    if k != invoice.invoice_id}))
    response = client.get(f"/l/{signer.link_token(a, 'c1', invoice.invoice_id, 1)}")
    assert response.headers["Location"] == f"{_site(settings, signer, a)}/index.html"
    assert all_events(store)[0].invoice_id == invoice.invoice_id


def test_link_naming_another_customers_invoice_never_lands_there(client, store, ledger, signer, settings):
    a, b = _two_customers(ledger)
    theirs = _invoice(ledger, b)
    response = client.get(f"/l/{signer.link_token(a, 'c1', theirs.invoice_id, 1)}")
    assert response.headers["Location"] == f"{_site(settings, signer, a)}/index.html"
    assert signer.customer_key(b, 1) not in response.headers["Location"]
    [event] = all_events(store)
    assert (event.customer_id, event.invoice_id) == (a, "")


def test_tampered_link_records_nothing(client, store, ledger, signer):
    a, b = _two_customers(ledger)
    token = signer.link_token(a, "c1", "", 1)
    # B's id in the payload under A's signature.
    swapped = signer.link_token(b, "c1", "", 1).split(".")[0] + "." + token.split(".", 1)[1]
    for bad in (tamper(token), token + "x", token[:-10], "not-a-token", swapped):
        response = client.get(f"/l/{bad}")
        assert response.status_code == 404, bad
        assert b"This page does not exist" in response.data
    assert all_events(store) == []


def test_expired_link_offers_a_fresh_link_and_records_nothing(client, store, ledger, settings):
    a, _ = _two_customers(ledger)
    token = old_link_token(settings, a, _contact(ledger, a).contact_id, "", 1, age_days=settings.link_ttl_days + 1)
    response = client.get(f"/l/{token}")
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "Email me a fresh link" in html and 'action="/fresh"' in html
    assert 'type="email"' not in html  # nothing to type an address into
    assert all_events(store) == []


def test_a_link_just_inside_its_lifetime_still_works(client, store, ledger, settings):
    a, _ = _two_customers(ledger)
    token = old_link_token(settings, a, "c1", "", 1, age_days=settings.link_ttl_days - 1)
    assert client.get(f"/l/{token}").status_code == 303
    assert len(all_events(store)) == 1


def test_wrong_purpose_tokens_record_nothing(client, store, ledger, signer):
    a, _ = _two_customers(ledger)
    invoice = _invoice(ledger, a)
    link = signer.link_token(a, "c1", "", 1)
    page = signer.page_token("page", a, 1, "")
    view = signer.page_token("view", a, 1, "account")
    doc = signer.doc_token(a, 1, "statement", "", "0" * 64 + ".pdf")
    for token in (page, view, doc):
        assert client.get(f"/l/{token}").status_code == 404
    for token in (link, page, doc):
        assert client.post(f"/r/{token}").status_code == 404
    for token in (link, page, view):
        assert client.get(f"/d/{token}").status_code == 404
    assert client.get(f"/files/{link}").status_code == 404
    assert client.post("/fresh", data={"token": link}).status_code == 404
    assert client.get(f"/l/{signer.page_token('view', a, 1, invoice.invoice_id)}").status_code == 404
    assert all_events(store) == []


def test_revoked_tokens_record_nothing(client, store, ledger, signer, settings, tmp_path):
    a, _ = _two_customers(ledger)
    place_documents(ledger, settings, store, tmp_path / "site")
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    tokens = {
        "link": signer.link_token(a, "c1", "", 1),
        "view": signer.page_token("view", a, 1, "account"),
        "doc": signer.doc_token(a, 1, doc.document_id, doc.invoice_id, f"{doc.sha256}{doc.extension}"),
        "expired": old_link_token(settings, a, "c1", "", 1, age_days=settings.link_ttl_days + 5),
    }
    file_url = client.get(f"/d/{tokens['doc']}").headers["Location"]  # handed out before the revocation
    assert len(all_events(store)) == 1
    store.revoke(a)
    assert client.get(f"/l/{tokens['link']}").status_code == 404
    assert client.post(f"/r/{tokens['view']}").status_code == 404
    assert client.get(f"/d/{tokens['doc']}").status_code == 404
    assert client.get(f"/l/{tokens['expired']}").status_code == 404  # no fresh link for a revoked key
    assert client.get(file_url).status_code == 404
    assert len(all_events(store)) == 1
    # The new key version works at once.
    assert client.get(f"/l/{signer.link_token(a, 'c1', '', 2)}").status_code == 303


def test_a_revoked_or_rotated_key_is_refused_on_the_next_request(client, store, ledger, signer, settings):
    a, _ = _two_customers(ledger)
    old = signer.link_token(a, "c1", "", 1)
    assert client.get(f"/l/{old}").status_code == 303  # the hot path's connection is open and pooled now
    store.revoke(a)
    assert client.get(f"/l/{old}").status_code == 404
    rotated = signer.link_token(a, "c1", "", 2)
    assert client.get(f"/l/{rotated}").headers["Location"] == f"{_site(settings, signer, a, 2)}/index.html"
    store.revoke(a)
    assert client.get(f"/l/{rotated}").status_code == 404
    assert client.get(f"/l/{old}").status_code == 404
    assert len(all_events(store)) == 2


def test_the_receipt_is_committed_before_the_redirect_is_sent(app, store, ledger, signer):
    from werkzeug.test import EnvironBuilder

    a, _ = _two_customers(ledger)
    environ = EnvironBuilder(path=f"/l/{signer.link_token(a, 'c1', '', 1)}").get_environ()
    seen = []

    def start_response(status, headers, exc_info=None):
        # The store's own connection sees committed rows only.
        seen.append((status, store.count_events(kind="link_opened")))

    body = app(environ, start_response)
    b"".join(body)
    body.close()
    assert seen == [("303 SEE OTHER", 1)]


def test_links_of_customers_gone_from_the_export_record_nothing(client, store, ledger, signer):
    from dataclasses import replace

    a, _ = _two_customers(ledger)
    store.import_snapshot(replace(
        ledger, customers={k: v for k, v in ledger.customers.items() if k != a},
        contacts=[c for c in ledger.contacts if c.customer_id != a],
        invoices={k: v for k, v in ledger.invoices.items() if v.customer_id != a},
        documents={k: v for k, v in ledger.documents.items() if v.customer_id != a}))
    assert client.get(f"/l/{signer.link_token(a, 'c1', '', 1)}").status_code == 404
    assert client.get(f"/l/{signer.link_token('NOBODY', 'c1', '', 1)}").status_code == 404
    assert all_events(store) == []


# --- /r: the view beacon -------------------------------------------------------------------------------


def test_beacon_records_page_viewed(client, store, ledger, signer):
    a, _ = _two_customers(ledger)
    invoice = _invoice(ledger, a)
    assert client.post(f"/r/{signer.page_token('view', a, 1, invoice.invoice_id)}").status_code == 204
    assert client.post(f"/r/{signer.page_token('view', a, 1, 'account')}").status_code == 204
    assert client.post(f"/r/{signer.page_token('view', a, 1, 'statement')}").status_code == 204
    events = all_events(store)
    assert [(e.kind, e.invoice_id, e.detail) for e in events] == [
        ("page_viewed", invoice.invoice_id, "invoice"), ("page_viewed", "", "account"),
        ("page_viewed", "", "statement")]


def test_beacon_has_no_get_fallback(client, store, ledger, signer):
    """A GET (an image pixel, a scanner following every URL in a page) must never count as a view."""
    a, _ = _two_customers(ledger)
    response = client.get(f"/r/{signer.page_token('view', a, 1, 'account')}")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert all_events(store) == []


def test_beacon_naming_another_customers_invoice_records_nothing(client, store, ledger, signer):
    a, b = _two_customers(ledger)
    assert client.post(f"/r/{signer.page_token('view', a, 1, _invoice(ledger, b).invoice_id)}").status_code == 404
    assert all_events(store) == []


# --- /d and /files: documents --------------------------------------------------------------------------


def test_document_records_and_redirects_to_a_short_lived_file_address(client, store, ledger, signer, settings,
                                                                      tmp_path):
    place_documents(ledger, settings, store, tmp_path / "site")
    a, _ = _two_customers(ledger)
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    response = client.get(f"/d/{signer.doc_token(a, 1, doc.document_id, doc.invoice_id, doc.sha256 + doc.extension)}")
    assert response.status_code == 303
    location = urlparse(response.headers["Location"]).path
    assert location.startswith("/files/")
    [event] = all_events(store)
    assert (event.kind, event.document_id, event.invoice_id) == ("document_viewed", doc.document_id, doc.invoice_id)
    with client.get(location) as served:
        assert served.status_code == 200
        assert served.data == ledger.document_path(doc).read_bytes()
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        disposition = served.headers["Content-Disposition"]
    assert disposition.startswith("inline" if doc.extension in {".pdf", ".png", ".jpg"} else "attachment")
    assert Path(doc.file).name in disposition  # saved under its own name, not the content hash
    assert len(all_events(store)) == 1  # the file itself is not a second receipt


def test_file_addresses_expire_and_cannot_be_forged(client, app, store, ledger, signer, settings, tmp_path,
                                                    monkeypatch):
    place_documents(ledger, settings, store, tmp_path / "site")
    a, _ = _two_customers(ledger)
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    location = client.get(f"/d/{signer.doc_token(a, 1, doc.document_id, doc.invoice_id, doc.sha256 + doc.extension)}"
                          ).headers["Location"]
    with client.get(location) as served:
        assert served.status_code == 200
    assert client.get(tamper(location)).status_code == 404
    import time

    later = time.time() + 301
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get(location).status_code == 404


def test_no_token_reaches_another_customers_document(client, store, ledger, signer, settings, tmp_path):
    place_documents(ledger, settings, store, tmp_path / "site")
    a, _ = _two_customers(ledger)
    theirs = next(d for d in ledger.documents.values() if d.customer_id != a)
    name = theirs.sha256 + theirs.extension
    # A's (genuinely signed) token naming B's document id, or B's object name: the folder is A's, so nothing.
    for document_id in (theirs.document_id, "statement"):
        response = client.get(f"/d/{signer.doc_token(a, 1, document_id, '', name)}")
        assert response.status_code == 404
    assert all_events(store) == []


def test_s3_target_redirects_to_a_presigned_url_for_the_customers_own_folder(settings, tmp_path, store, ledger,
                                                                            signer, monkeypatch):
    calls = []

    def presign_document(settings, object_key, expires_in=300, *, filename=None):
        calls.append((object_key, expires_in, filename))
        return f"https://bucket.example/{object_key}?X-Amz-Signature=abc"

    monkeypatch.setitem(sys.modules, "portal.publish.publisher",
                        types.SimpleNamespace(presign_document=presign_document))
    a, _ = _two_customers(ledger)
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    name = doc.sha256 + doc.extension
    with make_app(settings.replace(target="s3://bucket/site"), tmp_path) as app:
        response = app.test_client().get(f"/d/{signer.doc_token(a, 1, doc.document_id, doc.invoice_id, name)}")
        assert response.status_code == 303
        assert calls == [(f"docs/{signer.customer_key(a, 1)}/{name}", 300, Path(doc.file).name)]
        assert response.headers["Location"].startswith("https://bucket.example/docs/")
        assert [e.kind for e in all_events(store)] == ["document_viewed"]
        assert app.test_client().get("/files/anything").status_code == 404


# --- "email me a fresh link" -------------------------------------------------------------------------


def _fresh_form(client, settings, ledger, customer_id, contact_id, invoice_id=""):
    token = old_link_token(settings, customer_id, contact_id, invoice_id, 1, age_days=settings.link_ttl_days + 1)
    return hidden_field(client.get(f"/l/{token}").get_data(as_text=True), "token")


def test_fresh_link_goes_only_to_the_contact_on_file(client, store, ledger, settings, tmp_path):
    a, _ = _two_customers(ledger)
    contact = _contact(ledger, a)
    invoice = _invoice(ledger, a)
    form = _fresh_form(client, settings, ledger, a, contact.contact_id, invoice.invoice_id)
    response = client.post("/fresh", data={
        "token": form, "email": "attacker@evil.example", "to": "attacker@evil.example",
        "contact_id": "x", "customer_id": "B", "cc": "other@evil.example"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/fresh/sent")
    messages = outbox_messages(tmp_path)
    assert [m["To"].addresses[0].addr_spec for m in messages] == [contact.email]
    body = messages[0].get_body(("plain",)).get_content()
    assert "evil" not in messages[0].as_string()
    assert invoice.number in messages[0]["Subject"]
    url = next(word for word in body.split() if "/l/" in word)
    # The fresh link works and lands on the invoice.
    landed = client.get(urlparse(url).path)
    assert landed.status_code == 303 and "/i/" in landed.headers["Location"]
    kinds = [(e.kind, e.contact_id) for e in all_events(store)]
    assert kinds == [("email_sent", contact.contact_id), ("link_opened", contact.contact_id)]
    assert client.get("/fresh/sent").status_code == 200


def test_fresh_link_for_an_invoice_number_with_a_line_break_gets_a_one_line_subject(client, store, ledger,
                                                                                    settings, export_dir, tmp_path):
    a, _ = _two_customers(ledger)
    contact, invoice = _contact(ledger, a), _invoice(ledger, a)
    path = export_dir / "invoices.csv"
    with path.open(newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    for row in rows:
        if row["invoice_id"] == invoice.invoice_id:
            row["number"] = "INV-7\r\nBcc: stranger@evil.example\nX-Evil:  yes"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_sample(store, settings, export_dir)
    form = _fresh_form(client, settings, ledger, a, contact.contact_id, invoice.invoice_id)
    response = client.post("/fresh", data={"token": form})
    assert response.status_code == 303
    [message] = outbox_messages(tmp_path)
    assert message["Subject"].startswith("Your link to invoice INV-7 Bcc: stranger@evil.example X-Evil: yes")
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert [a.addr_spec for a in message["To"].addresses] == [contact.email]


def test_fresh_link_for_a_contact_no_longer_on_file_goes_to_the_contacts_on_file(client, ledger, settings,
                                                                                 tmp_path):
    a, _ = _two_customers(ledger)
    form = _fresh_form(client, settings, ledger, a, "someone-who-left")
    client.post("/fresh", data={"token": form, "email": "attacker@evil.example"})
    on_file = sorted(c.email for c in ledger.contacts if c.customer_id == a)
    assert sorted(m["To"].addresses[0].addr_spec for m in outbox_messages(tmp_path)) == on_file


def test_fresh_links_are_capped_per_contact_per_day(client, ledger, settings, tmp_path):
    a, _ = _two_customers(ledger)
    contact = _contact(ledger, a)
    for _ in range(5):
        form = _fresh_form(client, settings, ledger, a, contact.contact_id)
        assert client.post("/fresh", data={"token": form}).status_code == 303
    assert len(outbox_messages(tmp_path)) == 3


def test_forged_fresh_form_sends_nothing(client, store, ledger, settings, tmp_path):
    a, _ = _two_customers(ledger)
    form = _fresh_form(client, settings, ledger, a, _contact(ledger, a).contact_id)
    assert client.post("/fresh", data={"token": tamper(form)}).status_code == 404
    assert client.post("/fresh", data={}).status_code == 404
    assert outbox_messages(tmp_path) == [] and all_events(store) == []


def test_fresh_link_over_smtp(store, ledger, settings, tmp_path):
    """The same flow through a real SMTP server (aiosmtpd): only the address on file is a recipient."""
    from aiosmtpd.controller import Controller

    received = []
    done = threading.Event()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
            done.set()
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with make_app(settings, tmp_path) as app:
            app.extensions["portal"].settings = settings.replace(mail_url=f"smtp://127.0.0.1:{port}")
            client = app.test_client()
            a, _ = _two_customers(ledger)
            contact = _contact(ledger, a)
            form = _fresh_form(client, settings, ledger, a, contact.contact_id)
            assert client.post("/fresh", data={"token": form, "email": "attacker@evil.example"}).status_code == 303
            assert done.wait(5)
    finally:
        controller.stop()
    [(recipients, message)] = received
    assert recipients == [contact.email]
    event = next(e for e in all_events(store) if e.kind == "email_sent")
    assert event.detail == f"fresh_link {message['Message-ID']}"


def test_folder_documents_download_unless_browsers_show_their_type_and_run_sandboxed(app, client, ledger, signer,
                                                                                   tmp_path):
    """The same rule as presigned S3 URLs (SHOWN in tests/test_publish.py), and a CSP sandbox: a document shown
    in the browser runs no script and counts as another origin, whatever it holds. But a PDF: Chrome and Safari
    show nothing for a sandboxed PDF (their viewer is a plugin no sandbox token allows), and run it apart from
    our origin anyway."""
    a, _ = _two_customers(ledger)
    folder = tmp_path / "site" / "docs" / signer.customer_key(a, 1)
    folder.mkdir(parents=True, exist_ok=True)
    for extension, disposition in SHOWN.items():
        name = "c" * 64 + extension
        (folder / name).write_bytes(b"<?xml version='1.0'?><x/>")
        token = app.extensions["portal"].files.dumps([a, 1, name, f"Delivery note{extension}"])
        with client.get(f"/files/{token}") as served:
            assert served.status_code == 200
            assert served.headers["Content-Disposition"].startswith(disposition), extension
            policy = [d.strip() for d in served.headers["Content-Security-Policy"].split(";")]
            assert ("sandbox" in policy) == (extension != ".pdf"), (extension, policy)
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_rendered_pdfs_are_saved_under_readable_names(client, store, ledger, signer, settings, tmp_path):
    a, b = _two_customers(ledger)
    invoice = _invoice(ledger, a)
    name = "b" * 64 + ".pdf"
    target = tmp_path / "site" / "docs" / signer.customer_key(a, 1) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"%PDF-1.4 rendered")
    cases = [(f"invoice:{invoice.invoice_id}", invoice.invoice_id, f"Invoice {invoice.number}.pdf"),
             ("statement", "", "Statement.pdf")]
    for document_id, invoice_id, expected in cases:
        location = client.get(f"/d/{signer.doc_token(a, 1, document_id, invoice_id, name)}").headers["Location"]
        with client.get(urlparse(location).path) as served:
            assert expected in served.headers["Content-Disposition"]
    # The invoice PDF of an invoice that is not the one the token names, or not this customer's: nothing.
    theirs = _invoice(ledger, b).invoice_id
    for document_id, invoice_id in ((f"invoice:{theirs}", invoice.invoice_id), (f"invoice:{theirs}", theirs),
                                    ("statement", invoice.invoice_id)):
        assert client.get(f"/d/{signer.doc_token(a, 1, document_id, invoice_id, name)}").status_code == 404
    assert store.count_events(kind="document_viewed") == 2
