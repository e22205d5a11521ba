"""/question names the asking contact, on SQLite and PostgreSQL: an address on file ties the question to that
contact (the answer goes there); an address not on file is refused and nothing is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.collect.answers import customer_questions
from portal.store.disputes import questions
from tests.dispute_helpers import customer_with_invoices, page_token
from tests.webhook_helpers import make_app


@pytest.fixture
def client(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        yield app.test_client()


def test_the_asking_contact_is_kept_only_when_on_file(client, settings, store, ledger):
    customer, _ = customer_with_invoices(store, 1)
    contact = next(c for c in ledger.contacts if c.customer_id == customer.customer_id)
    stranger = next(c for c in ledger.contacts if c.customer_id != customer.customer_id)
    form = {"page_token": page_token(settings, customer.customer_id), "message": "When is it due?"}
    refused = client.post("/question", data={**form, "email": stranger.email})
    assert refused.status_code == 400 and "not one we have on file" in refused.text
    with store.begin() as conn:
        assert conn.execute(select(func.count()).select_from(questions)).scalar_one() == 0
    assert client.post("/question", data={**form, "email": contact.email.upper()}).status_code == 200
    [asked] = customer_questions(store, customer.customer_id)
    assert asked["contact_id"] == contact.contact_id and asked["contact_email"] == contact.email
