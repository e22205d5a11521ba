"""/promise, the customer's promise to pay, through the Flask app on SQLite and PostgreSQL: a promise made with the
page token is recorded for the customer's collector; a forged or revoked token, another customer's invoice or an
amount outside the limits records nothing; what the customer typed is escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal.collect.promises import customer_promises
from portal.store.collect import promises, touches
from tests.dispute_helpers import customer_with_invoices, other_customers_invoice, page_token
from tests.webhook_helpers import make_app


@pytest.fixture
def client(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        yield app.test_client()


def _count(store, table) -> int:
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _form(settings, customer_id, invoice_ids, amount, days=5, **extra):
    day = (datetime.now(UTC).date() + timedelta(days=days)).isoformat()
    return {"page_token": page_token(settings, customer_id), "promise_invoice": list(invoice_ids),
            "promise_amount": amount, "promise_date": day, **extra}


def _amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def test_a_promise_made_on_the_page_is_recorded_for_the_collector(client, settings, store):
    customer, invs = customer_with_invoices(store, 1)
    answer = client.post("/promise", data=_form(settings, customer.customer_id, [invs[0].invoice_id],
                                                _amount(invs[0].balance)))
    assert answer.status_code == 200 and "Thank you: we have noted your promise" in answer.text
    [row] = customer_promises(store, customer.customer_id)
    assert row["source"] == "customer" and row["amount"] == invs[0].balance
    assert row["collector"] == customer.collector
    with store.begin() as conn:
        kinds = conn.execute(select(touches.c.kind).where(touches.c.customer_id == customer.customer_id)).scalars()
        assert list(kinds) == ["promise"]


def test_a_forged_or_revoked_token_records_nothing(client, settings, store):
    customer, invs = customer_with_invoices(store, 1)
    form = _form(settings, customer.customer_id, [invs[0].invoice_id], _amount(invs[0].balance))
    assert client.post("/promise", data={**form, "page_token": form["page_token"] + "x"}).status_code == 404
    assert client.post("/promise", data={k: v for k, v in form.items() if k != "page_token"}).status_code in (400, 404)
    store.revoke(customer.customer_id)
    assert client.post("/promise", data=form).status_code == 404
    assert _count(store, promises) == 0 and _count(store, touches) == 0


def test_another_customers_invoice_and_amounts_outside_the_limits_are_refused(client, settings, store):
    customer, invs = customer_with_invoices(store, 1)
    other = other_customers_invoice(store, customer.customer_id)
    cases = [
        (_form(settings, customer.customer_id, [other.invoice_id], "1.00"), "is not an invoice of customer"),
        (_form(settings, customer.customer_id, [invs[0].invoice_id], "<script>alert(1)</script>"),
         "&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; is not a number"),
        (_form(settings, customer.customer_id, [invs[0].invoice_id], _amount(invs[0].balance), days=31),
         "at the latest"),
        (_form(settings, customer.customer_id, [invs[0].invoice_id], "0.01"), "at least 25%"),
    ]
    for form, says in cases:
        answer = client.post("/promise", data=form)
        assert answer.status_code == 400, says
        assert says in answer.text and "<script>alert" not in answer.text
    assert _count(store, promises) == 0 and _count(store, touches) == 0
