"""Unsubscribing from reminders through the webhook: GET only asks, POST records, bad tokens record nothing,
and `portal remind` honours it (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from portal.core.signing import Signer
from portal.mail.reminders import send_reminders
from portal.store.mail import mail_unsubscribes
from tests.smtpserver import mail_ledger
from tests.webhook_helpers import all_events, make_app, tamper

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(store, tmp_path):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    return ledger


@pytest.fixture
def client(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        yield app.test_client()


def _token(settings, contact_id="k1", version=1):
    return Signer(settings).page_token("unsubscribe", "C1", version, contact_id)


def _unsubscribed(store):
    with store.begin() as conn:
        return [(r.customer_id, r.contact_id) for r in conn.execute(select(mail_unsubscribes))]


def test_get_asks_and_changes_nothing(client, store, settings):
    response = client.get(f"/u/{_token(settings)}", headers={"User-Agent": "MailScanner/1.0"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "ann@c1.example" in html
    assert re.search(r'<form method="post" action="/u/[^"]+">', html)
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    assert _unsubscribed(store) == [] and all_events(store) == []


def test_post_records_once_and_remind_honours_it(client, store, settings, tmp_path):
    for _ in range(2):
        response = client.post(f"/u/{_token(settings)}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        assert "no more payment reminders to ann@c1.example" in response.get_data(as_text=True)
    assert _unsubscribed(store) == [("C1", "k1")]
    [event] = all_events(store)
    assert (event.kind, event.customer_id, event.contact_id) == ("unsubscribed", "C1", "k1")
    result = send_reminders(settings.replace(mail_url=f"outbox:{tmp_path / 'out'}"), store, dry_run=True, now=NOW)
    assert "k1" not in {m.contact_id for m in result.messages}
    assert any("C1/k1: unsubscribed" in s for s in result.skipped)


@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_tokens_record_nothing(client, store, settings, method):
    signer = Signer(settings)
    bad = [tamper(_token(settings)),
           _token(settings, version=2),  # not the customer's key version (revoked or forged)
           _token(settings, contact_id="nobody"),  # no such contact on file
           signer.page_token("view", "C1", 1, "k1")]  # a token for another purpose
    for token in bad:
        assert getattr(client, method)(f"/u/{token}").status_code == 404
    assert _unsubscribed(store) == [] and all_events(store) == []


def test_a_revoked_customer_s_old_link_stops_working(client, store, settings):
    token = _token(settings)
    store.revoke("C1")
    assert client.post(f"/u/{token}").status_code == 404
    assert _unsubscribed(store) == []
