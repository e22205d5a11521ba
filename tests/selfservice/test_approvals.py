"""Send to my approver (portal/selfservice/approvals.py) through the webhook, its job runner and the staff pages.

Real parts: the webhook app on SQLite and PostgreSQL, its jobs, mail written by the outbox transport, the staff
login with its CSRF token. A known approver gets the invoice link at once; a typed address gets nothing until an
admin confirmed it; only POST approves, once; tokens and forms bind the customer.
"""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from portal.balances import position
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.store import approvals as store_approvals
from portal.store.tables import events
from tests.staff_helpers import add_staff, csrf, login
from tests.webhook_helpers import import_sample, make_app, outbox_messages, tamper

TYPED = "boss@customer.example"


@pytest.fixture
def webhook(settings, store, export_dir, tmp_path):
    ledger = import_sample(store, settings, export_dir)
    with make_app(settings, tmp_path) as app:
        yield app, ledger


def _with_approver(store):
    data = next(d for d in store.customer_data() if any(c.role == "approver" for c in d.contacts) and d.invoices)
    return data, next(c for c in data.contacts if c.role == "approver")


def _send(app, settings, customer_id, invoice_id, **form):
    token = Signer(settings).page_token("page", customer_id, 1)
    response = app.test_client().post("/approval", data={"page_token": token, "invoice": invoice_id, **form})
    app.extensions["jobs"].wait()
    return response


def _mails_to(tmp_path, address):
    return [m for m in outbox_messages(tmp_path) if m["To"].addresses[0].addr_spec == address]


def _link(message) -> str:
    return re.search(r"(/approve/\S+)", message.get_body(("plain",)).get_content()).group(1)


def _events(store, kind):
    with store.begin() as conn:
        return conn.execute(select(events).where(events.c.kind == kind)).all()


def _requests(store):
    with store.begin() as conn:
        return store_approvals.requests(conn)


def test_a_known_approver_gets_the_invoice_and_approves_it_once(webhook, settings, store, tmp_path):
    app, _ledger = webhook
    data, approver = _with_approver(store)
    invoice = data.invoices[0]
    response = _send(app, settings, data.customer.customer_id, invoice.invoice_id, approver=approver.contact_id)
    assert response.status_code == 200 and invoice.number in response.text
    [mail] = _mails_to(tmp_path, approver.email)
    link = _link(mail)
    client = app.test_client()
    page = client.get(link)  # shows the invoice; a scanner's fetch approves nothing
    with store.begin() as conn:
        open_now = position.of_invoices(conn, [invoice.invoice_id])[invoice.invoice_id].open
    assert page.status_code == 200 and format_money(open_now, invoice.currency, data.customer.locale) in page.text
    assert _events(store, "invoice_approved") == []
    assert client.post(link).status_code == 200
    assert client.post(link).status_code == 200  # twice: one approval
    [approved] = _events(store, "invoice_approved")
    assert (approved.customer_id, approved.invoice_id) == (data.customer.customer_id, invoice.invoice_id)
    assert [r.status for r in _requests(store)] == ["approved"]

    # Staff see it on the customer's timeline.
    add_staff(store, "viewer@supplier.example")
    staff = app.test_client()
    login(staff, "viewer@supplier.example")
    timeline = staff.get(f"/staff/customer?id={data.customer.customer_id}")
    assert "Approved for payment by the customer&#39;s approver" in timeline.text


def test_a_typed_address_gets_nothing_until_an_admin_confirms_it(webhook, settings, store, tmp_path):
    app, _ledger = webhook
    data, _approver = _with_approver(store)
    invoice = data.invoices[0]
    response = _send(app, settings, data.customer.customer_id, invoice.invoice_id, approver_email=TYPED)
    assert response.status_code == 200
    assert _mails_to(tmp_path, TYPED) == []
    collector = data.customer.collector or settings.support_email
    [check] = _mails_to(tmp_path, collector)
    assert TYPED in check.get_body(("plain",)).get_content()
    [waiting] = _requests(store)

    add_staff(store, "viewer@supplier.example")
    add_staff(store, "admin@supplier.example", "admin")
    viewer = app.test_client()
    login(viewer, "viewer@supplier.example")
    assert viewer.post(f"/staff/approvals/{waiting.request_id}/confirm",
                       data={"csrf_token": csrf(viewer)}).status_code == 403  # not an admin
    admin = app.test_client()
    login(admin, "admin@supplier.example")
    assert admin.post(f"/staff/approvals/{waiting.request_id}/confirm",
                      data={"csrf_token": "forged"}).status_code in (400, 403)
    assert _mails_to(tmp_path, TYPED) == [] and [r.status for r in _requests(store)] == ["awaiting_collector"]
    assert TYPED in admin.get("/staff/approvals").text
    done = admin.post(f"/staff/approvals/{waiting.request_id}/confirm", data={"csrf_token": csrf(admin)})
    assert done.status_code == 302
    app.extensions["jobs"].wait()
    [mail] = _mails_to(tmp_path, TYPED)
    assert "/approve/" in mail.get_body(("plain",)).get_content()


def test_another_customers_invoice_or_approver_is_refused(webhook, settings, store, tmp_path):
    app, _ledger = webhook
    data, approver = _with_approver(store)
    cid = data.customer.customer_id
    foreign = next(d for d in store.customer_data() if d.customer.customer_id != cid and d.invoices)
    assert _send(app, settings, cid, foreign.invoices[0].invoice_id, approver=approver.contact_id).status_code == 400
    assert _send(app, settings, foreign.customer.customer_id,
                 foreign.invoices[0].invoice_id, approver=approver.contact_id).status_code == 400
    for form in ({"approver_email": "not an address"}, {"approver_email": "a@b.example\r\nBcc: c@d.example"}):
        assert _send(app, settings, cid, data.invoices[0].invoice_id, **form).status_code == 400
    assert _requests(store) == [] and outbox_messages(tmp_path) == []


def test_tampered_expired_foreign_and_revoked_links_approve_nothing(webhook, settings, store, tmp_path,
                                                                   monkeypatch):
    app, _ledger = webhook
    data, approver = _with_approver(store)
    cid = data.customer.customer_id
    _send(app, settings, cid, data.invoices[0].invoice_id, approver=approver.contact_id)
    [request] = _requests(store)
    genuine = _link(_mails_to(tmp_path, approver.email)[0]).rsplit("/", 1)[1]
    signer = Signer(settings)
    other = next(d.customer.customer_id for d in store.customer_data() if d.customer.customer_id != cid)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - settings.link_ttl_days * 86400 - 60)
    expired = signer.action_token("approve", cid, 1, request.request_id)
    monkeypatch.undo()
    client = app.test_client()
    for token in (tamper(genuine), expired, signer.action_token("approve", other, 1, request.request_id),
                  signer.action_token("contact-confirm", cid, 1, request.request_id)):
        assert client.post(f"/approve/{token}").status_code == 404
        assert client.get(f"/approve/{token}").status_code == 404
    store.revoke(cid)
    assert client.post(f"/approve/{genuine}").status_code == 404
    assert _events(store, "invoice_approved") == [] and [r.status for r in _requests(store)] == ["sent"]


def test_the_approval_shows_its_date_and_approver_on_the_invoice_and_the_approvers_page(webhook, settings, store,
                                                                                       tmp_path):
    """"Approved for payment on DATE by ADDRESS": in the customer's language and date format, on the approver's
    page once approved and on the customer's invoice page (as the refresh after the approval renders it)."""
    from datetime import UTC, datetime

    from babel.dates import format_date
    from sqlalchemy import update

    from portal.build.customer import render_customer
    from portal.build.pages import PageRenderer, invoice_slug
    from portal.core.i18n import translations_for
    from portal.store import tables

    app, _ledger = webhook
    data, approver = _with_approver(store)
    cid, invoice, other = data.customer.customer_id, data.invoices[0], data.invoices[-1]
    with store.begin() as conn:
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == cid).values(locale="de"))
    _send(app, settings, cid, invoice.invoice_id, approver=approver.contact_id)
    link = _link(_mails_to(tmp_path, approver.email)[0])
    client = app.test_client()
    before = client.get(link).text
    sentence = translations_for("de", "en").gettext("Approved for payment on %(date)s by %(email)s.")
    assert sentence != "Approved for payment on %(date)s by %(email)s."  # translated
    assert sentence.split("%(")[0] not in before and 'type="submit"' in before
    done = client.post(link)
    expected = sentence % {"date": format_date(datetime.now(UTC).date(), "medium", locale="de"),
                           "email": approver.email}
    assert done.status_code == 200 and expected in done.text
    after = client.get(link).text
    assert expected in after and 'type="submit"' not in after  # approved: no second button

    rendered = render_customer(PageRenderer(settings), store, cid)
    pages = {o.path.rsplit("/", 1)[1]: o.data.decode() for o in rendered.outputs if o.path.endswith(".html")}
    assert expected in pages[f"{invoice_slug(invoice.invoice_id)}.html"]
    if other.invoice_id != invoice.invoice_id:  # another invoice of the customer: not approved
        assert sentence.split("%(")[0] not in pages[f"{invoice_slug(other.invoice_id)}.html"]
