"""The webhook's links, on SQLite and PostgreSQL: every accepted token records one event, every rejected one
records nothing, and no token reaches another customer's pages. Documents: test_files.py."""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from urllib.parse import urlparse

import pytest

from tests.ports import free_port
from tests.webhook_helpers import (
    all_events,
    contact_of,
    hidden_field,
    import_sample,
    invoice_of,
    make_app,
    old_link_token,
    outbox_messages,
    place_documents,
    site_address,
    tamper,
    two_customers,
)


@pytest.fixture
def app(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


# --- /l: the emailed link ------------------------------------------------------------------------------


def test_link_records_link_opened_and_redirects_to_the_account_page(client, store, ledger, signer, settings):
    a, _ = two_customers(ledger)
    contact = contact_of(ledger, a)
    token = signer.link_token(a, contact.contact_id, "", 1)
    response = client.get(f"/l/{token}", headers={"User-Agent": "Mail/1.0"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{site_address(settings, signer, a)}/index.html"
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
    a, _ = two_customers(ledger)
    invoice = invoice_of(ledger, a)
    response = client.get(f"/l/{signer.link_token(a, 'c1', invoice.invoice_id, 1)}")
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"{site_address(settings, signer, a)}/i/")
    assert all_events(store)[0].invoice_id == invoice.invoice_id


def test_link_to_a_closed_invoice_lands_on_the_account_page_and_keeps_the_receipt(
        client, store, ledger, signer, settings):
    from dataclasses import replace

    a, _ = two_customers(ledger)
    invoice = invoice_of(ledger, a)
    store.import_snapshot(replace(ledger, invoices={k: v for k, v in ledger.invoices.items()
                                                    if k != invoice.invoice_id}))
    response = client.get(f"/l/{signer.link_token(a, 'c1', invoice.invoice_id, 1)}")
    assert response.headers["Location"] == f"{site_address(settings, signer, a)}/index.html"
    assert all_events(store)[0].invoice_id == invoice.invoice_id


def test_link_naming_another_customers_invoice_never_lands_there(client, store, ledger, signer, settings):
    a, b = two_customers(ledger)
    theirs = invoice_of(ledger, b)
    response = client.get(f"/l/{signer.link_token(a, 'c1', theirs.invoice_id, 1)}")
    assert response.headers["Location"] == f"{site_address(settings, signer, a)}/index.html"
    assert signer.customer_key(b, 1) not in response.headers["Location"]
    [event] = all_events(store)
    assert (event.customer_id, event.invoice_id) == (a, "")



def test_tampered_link_records_nothing(client, store, ledger, signer):
    a, b = two_customers(ledger)
    token = signer.link_token(a, "c1", "", 1)
    # B's id in the payload under A's signature.
    swapped = signer.link_token(b, "c1", "", 1).split(".")[0] + "." + token.split(".", 1)[1]
    for bad in (tamper(token), token + "x", token[:-10], "not-a-token", swapped):
        response = client.get(f"/l/{bad}")
        assert response.status_code == 404, bad
        assert b"This page does not exist" in response.data
    assert all_events(store) == []


def test_expired_link_offers_a_fresh_link_and_records_nothing(client, store, ledger, settings):
    a, _ = two_customers(ledger)
    token = old_link_token(settings, a, contact_of(ledger, a).contact_id, "", 1, age_days=settings.link_ttl_days + 1)
    response = client.get(f"/l/{token}")
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "Email me a fresh link" in html and 'action="/fresh"' in html
    assert 'type="email"' not in html  # nothing to type an address into
    assert all_events(store) == []


def test_a_link_just_inside_its_lifetime_still_works(client, store, ledger, settings):
    a, _ = two_customers(ledger)
    token = old_link_token(settings, a, "c1", "", 1, age_days=settings.link_ttl_days - 1)
    assert client.get(f"/l/{token}").status_code == 303
    assert len(all_events(store)) == 1


def test_wrong_purpose_tokens_record_nothing(client, store, ledger, signer):
    a, _ = two_customers(ledger)
    invoice = invoice_of(ledger, a)
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
    a, _ = two_customers(ledger)
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
    a, _ = two_customers(ledger)
    old = signer.link_token(a, "c1", "", 1)
    assert client.get(f"/l/{old}").status_code == 303  # the hot path's connection is open and pooled now
    store.revoke(a)
    assert client.get(f"/l/{old}").status_code == 404
    rotated = signer.link_token(a, "c1", "", 2)
    assert client.get(f"/l/{rotated}").headers["Location"] == f"{site_address(settings, signer, a, 2)}/index.html"
    store.revoke(a)
    assert client.get(f"/l/{rotated}").status_code == 404
    assert client.get(f"/l/{old}").status_code == 404
    assert len(all_events(store)) == 2


def test_the_receipt_is_committed_before_the_redirect_is_sent(app, store, ledger, signer):
    from werkzeug.test import EnvironBuilder

    a, _ = two_customers(ledger)
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

    a, _ = two_customers(ledger)
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
    a, _ = two_customers(ledger)
    invoice = invoice_of(ledger, a)
    assert client.post(f"/r/{signer.page_token('view', a, 1, invoice.invoice_id)}").status_code == 204
    assert client.post(f"/r/{signer.page_token('view', a, 1, 'account')}").status_code == 204
    assert client.post(f"/r/{signer.page_token('view', a, 1, 'statement')}").status_code == 204
    events = all_events(store)
    assert [(e.kind, e.invoice_id, e.detail) for e in events] == [
        ("page_viewed", invoice.invoice_id, "invoice"), ("page_viewed", "", "account"),
        ("page_viewed", "", "statement")]


def test_beacon_has_no_get_fallback(client, store, ledger, signer):
    """A GET (an image pixel, a scanner following every URL in a page) must never count as a view."""
    a, _ = two_customers(ledger)
    response = client.get(f"/r/{signer.page_token('view', a, 1, 'account')}")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert all_events(store) == []


def test_beacon_naming_another_customers_invoice_records_nothing(client, store, ledger, signer):
    a, b = two_customers(ledger)
    assert client.post(f"/r/{signer.page_token('view', a, 1, invoice_of(ledger, b).invoice_id)}").status_code == 404
    assert all_events(store) == []


# --- "email me a fresh link" -------------------------------------------------------------------------


def _fresh_form(client, settings, ledger, customer_id, contact_id, invoice_id=""):
    token = old_link_token(settings, customer_id, contact_id, invoice_id, 1, age_days=settings.link_ttl_days + 1)
    return hidden_field(client.get(f"/l/{token}").get_data(as_text=True), "token")


def test_fresh_link_goes_only_to_the_contact_on_file(client, store, ledger, settings, tmp_path):
    a, _ = two_customers(ledger)
    contact = contact_of(ledger, a)
    invoice = invoice_of(ledger, a)
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
    a, _ = two_customers(ledger)
    contact, invoice = contact_of(ledger, a), invoice_of(ledger, a)
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
    a, _ = two_customers(ledger)
    form = _fresh_form(client, settings, ledger, a, "someone-who-left")
    client.post("/fresh", data={"token": form, "email": "attacker@evil.example"})
    on_file = sorted(c.email for c in ledger.contacts if c.customer_id == a)
    assert sorted(m["To"].addresses[0].addr_spec for m in outbox_messages(tmp_path)) == on_file


def test_fresh_links_are_capped_per_contact_per_day(client, ledger, settings, tmp_path):
    a, _ = two_customers(ledger)
    contact = contact_of(ledger, a)
    for _ in range(5):
        form = _fresh_form(client, settings, ledger, a, contact.contact_id)
        assert client.post("/fresh", data={"token": form}).status_code == 303
    assert len(outbox_messages(tmp_path)) == 3


def test_forged_fresh_form_sends_nothing(client, store, ledger, settings, tmp_path):
    a, _ = two_customers(ledger)
    form = _fresh_form(client, settings, ledger, a, contact_of(ledger, a).contact_id)
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
            a, _ = two_customers(ledger)
            contact = contact_of(ledger, a)
            form = _fresh_form(client, settings, ledger, a, contact.contact_id)
            assert client.post("/fresh", data={"token": form, "email": "attacker@evil.example"}).status_code == 303
            assert done.wait(5)
    finally:
        controller.stop()
    [(recipients, message)] = received
    assert recipients == [contact.email]
    event = next(e for e in all_events(store) if e.kind == "email_sent")
    assert event.detail == f"fresh_link {message['Message-ID']}"
