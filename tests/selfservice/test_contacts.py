"""AP address changes (portal/selfservice/contacts.py) through the webhook, the job runner and `portal send`.

Real parts: the webhook app over SQLite and PostgreSQL, its job runner, mail written by the outbox transport, and a
real re-import. A typed address receives its confirmation link and nothing else until it confirms; tampered,
expired, foreign and revoked links confirm nothing; the collector is told; `portal send` uses the change from then
on; the next import that lists the address takes over (the ERP is the source of truth).
"""

from __future__ import annotations

import re
import time

import pytest
from click.testing import CliRunner

from portal.cli.main import cli
from portal.core.signing import CONTACT_CONFIRM_MAX_AGE, Signer
from portal.mail.sending import send_invoices
from portal.selfservice.contacts import MAX_REQUESTS_PER_DAY
from portal.store import contactchanges
from tests.conftest import TEST_SECRET
from tests.site_helpers import rewrite_csv
from tests.webhook_helpers import import_sample, make_app, outbox_messages, tamper

NEW = "new-ap@customer.example"


@pytest.fixture
def webhook(settings, store, export_dir, tmp_path):
    ledger = import_sample(store, settings, export_dir)
    with make_app(settings, tmp_path) as app:
        yield app, ledger


def _customer(store, ledger):
    """A customer with a billing contact and a collector."""
    data = next(d for d in store.customer_data()
                if any(c.role == "billing" for c in d.contacts) and d.customer.collector)
    return data.customer.customer_id, next(c for c in data.contacts if c.role == "billing")


def _ask(app, settings, customer_id, **form):
    token = Signer(settings).page_token("page", customer_id, 1)
    response = app.test_client().post("/contacts", data={"page_token": token, "kind": "add", "email": NEW, **form})
    app.extensions["jobs"].wait()
    return response


def _link(tmp_path, to=NEW) -> str:
    mails = [m for m in outbox_messages(tmp_path) if m["To"].addresses[0].addr_spec == to]
    assert len(mails) == 1
    return re.search(r"(/contacts/confirm/\S+)", mails[0].get_body(("plain",)).get_content()).group(1)


def _recipients(settings, store, tmp_path, folder, customer_id) -> set[str]:
    """Who `portal send` mails for the customer now (written by the outbox transport into tmp_path/folder)."""
    send_invoices(settings.replace(mail_url=f"outbox:{tmp_path / folder}"), store, customer_ids=[customer_id],
                  resend=True)
    return {m["To"].addresses[0].addr_spec for m in outbox_messages(tmp_path / folder, "")}


def _changes(store, customer_id=None):
    with store.begin() as conn:
        return contactchanges.changes(conn, None if customer_id is None else [customer_id])


def test_a_new_address_gets_only_its_confirmation_link_until_it_confirms(webhook, settings, store, tmp_path):
    app, ledger = webhook
    cid, billing = _customer(store, ledger)
    response = _ask(app, settings, cid, name="Pat Payables")
    assert response.status_code == 200 and NEW in response.text
    [confirmation] = [m for m in outbox_messages(tmp_path) if NEW in str(m["To"])]
    assert len(outbox_messages(tmp_path)) == 1  # nothing else went anywhere
    assert NEW not in _recipients(settings, store, tmp_path, "before", cid)  # portal send ignores it for now

    link = _link(tmp_path)
    client = app.test_client()
    page = client.get(link)  # a mail scanner's fetch confirms nothing
    assert page.status_code == 200 and "Confirm this address" in page.text
    assert [c.status for c in _changes(store, cid)] == ["requested"]
    assert client.post(link).status_code == 200
    app.extensions["jobs"].wait()
    assert client.post(link).status_code == 200  # a second click changes nothing
    app.extensions["jobs"].wait()
    [change] = _changes(store, cid)
    assert change.status == "confirmed"
    collector = [m for m in outbox_messages(tmp_path) if m is not confirmation and NEW not in str(m["To"])]
    assert len(collector) == 1 and NEW in collector[0].get_body(("plain",)).get_content()
    assert collector[0]["To"].addresses[0].addr_spec == store.customer_data([cid])[0].customer.collector
    # From now on `portal send` mails the new address too (an "add" keeps the old one).
    assert {NEW, billing.email} <= _recipients(settings, store, tmp_path, "after", cid)


def test_a_replacement_stops_mail_to_the_old_address(webhook, settings, store, tmp_path):
    app, ledger = webhook
    cid, billing = _customer(store, ledger)
    _ask(app, settings, cid, kind="replace", replaces=billing.contact_id)
    assert app.test_client().post(_link(tmp_path)).status_code == 200
    sent = _recipients(settings, store, tmp_path, "after", cid)
    assert NEW in sent and billing.email not in sent


def test_tampered_expired_foreign_and_revoked_links_confirm_nothing(webhook, settings, store, tmp_path, monkeypatch):
    app, ledger = webhook
    cid, _billing = _customer(store, ledger)
    _ask(app, settings, cid)
    [change] = _changes(store, cid)
    signer = Signer(settings)
    other = next(d.customer.customer_id for d in store.customer_data() if d.customer.customer_id != cid)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - CONTACT_CONFIRM_MAX_AGE - 60)
    expired = signer.action_token("contact-confirm", cid, 1, change.change_id)
    monkeypatch.undo()
    genuine = _link(tmp_path).rsplit("/", 1)[1]
    bad = [tamper(genuine), expired, signer.action_token("contact-confirm", other, 1, change.change_id),
           signer.action_token("approve", cid, 1, change.change_id),  # another purpose's token
           Signer(settings.replace(secret_key="someone-elses-secret-0123")).action_token(
               "contact-confirm", cid, 1, change.change_id)]
    client = app.test_client()
    for token in bad:
        assert client.post(f"/contacts/confirm/{token}").status_code == 404
        assert client.get(f"/contacts/confirm/{token}").status_code == 404
    store.revoke(cid)
    assert client.post(f"/contacts/confirm/{genuine}").status_code == 404
    assert [c.status for c in _changes(store)] == ["requested"]


@pytest.mark.parametrize("form", [{"email": "not an address"}, {"email": "a@b.example, c@d.example"},
                                  {"email": "x@y.example\r\nBcc: z@w.example"}, {"kind": "move"},
                                  {"kind": "replace", "replaces": "nobody"}])
def test_a_refused_request_records_and_sends_nothing(webhook, settings, store, tmp_path, form):
    app, ledger = webhook
    cid, _billing = _customer(store, ledger)
    response = _ask(app, settings, cid, **form)
    assert response.status_code == 400
    assert _changes(store) == [] and outbox_messages(tmp_path) == []


def test_another_customers_contact_cannot_be_replaced(webhook, settings, store, tmp_path):
    app, ledger = webhook
    cid, _billing = _customer(store, ledger)
    foreign = next(c for d in store.customer_data() if d.customer.customer_id != cid for c in d.contacts)
    assert _ask(app, settings, cid, kind="replace", replaces=foreign.contact_id).status_code == 400
    assert _changes(store) == [] and outbox_messages(tmp_path) == []


def test_a_page_cannot_be_used_to_mail_many_strangers(webhook, settings, store, tmp_path):
    app, ledger = webhook
    cid, _billing = _customer(store, ledger)
    for n in range(MAX_REQUESTS_PER_DAY):
        assert _ask(app, settings, cid, email=f"ap{n}@customer.example").status_code == 200
    assert _ask(app, settings, cid, email="one-more@customer.example").status_code == 429
    assert len(outbox_messages(tmp_path)) == MAX_REQUESTS_PER_DAY


def test_the_next_import_that_lists_the_address_takes_over(webhook, settings, store, export_dir, tmp_path, db_url,
                                                           monkeypatch):
    app, ledger = webhook
    cid, billing = _customer(store, ledger)
    _ask(app, settings, cid, kind="replace", replaces=billing.contact_id)
    app.test_client().post(_link(tmp_path))
    env = {"PORTAL_DATABASE_URL": db_url, "PORTAL_SECRET_KEY": TEST_SECRET}
    monkeypatch.chdir(tmp_path)
    report = CliRunner().invoke(cli, ["report", "contact-changes", "--format", "csv"], obj={}, env=env,
                                catch_exceptions=False)
    assert report.exit_code == 0
    lines = report.output.splitlines()
    assert lines[0] == ("change_id,customer_id,action,old_contact_id,old_email,new_email,name,status,requested_at,"
                        "confirmed_at,in_erp_at")
    assert len(lines) == 2 and f",{cid},replace,{billing.contact_id},{billing.email},{NEW},," in lines[1]

    # An import that does not list it yet keeps the change applied: the old address stays replaced.
    import_sample(store, settings, export_dir)
    assert [c.status for c in _changes(store, cid)] == ["confirmed"]
    emails = {c.email for c in store.customer_data([cid])[0].contacts}
    assert NEW in emails and billing.email not in emails
    # The ERP took it over (as the team did with the report): the export decides from now on.
    rewrite_csv(export_dir / "contacts.csv",
                lambda r: {**r, "email": NEW, "contact_id": NEW} if r["contact_id"] == billing.contact_id else r)
    import_sample(store, settings, export_dir)
    assert [c.status for c in _changes(store, cid)] == ["in_erp"]
    again = CliRunner().invoke(cli, ["report", "contact-changes", "--format", "csv"], obj={}, env=env,
                               catch_exceptions=False)
    assert again.output.splitlines()[1:] == []
    # ... so an export that later drops the address drops it here too.
    rewrite_csv(export_dir / "contacts.csv", lambda r: None if r["email"] == NEW else r)
    import_sample(store, settings, export_dir)
    assert NEW not in {c.email for c in store.customer_data([cid])[0].contacts}


def test_a_full_build_shows_the_same_contacts_as_the_refresh(webhook, settings, store, export_dir, tmp_path):
    """The nightly build renders from the export in memory before its import commits (portal/store/snapshotview.py):
    it must apply confirmed changes as the store does, or it would publish the old address back."""
    from portal.build.pipeline import build

    app, ledger = webhook
    cid, billing = _customer(store, ledger)
    _ask(app, settings, cid, kind="replace", replaces=billing.contact_id)
    app.test_client().post(_link(tmp_path))
    out = tmp_path / "nightly"
    build(export_dir, out, settings, store=store, workers=1)
    account = (out / "c" / Signer(settings).customer_key(cid, 1) / "index.html").read_text()
    section = account[account.index('id="ap-h"'):account.index("</ul>", account.index('id="ap-h"'))]
    assert NEW in section and billing.email not in section
