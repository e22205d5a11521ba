"""Fixtures of the payment tests (registered for every test module by tests/conftest.py): a Stripe stand-in,
settings that point at it, the sample built with payments on, and the webhook over it; and the helpers those
tests share: paying through /pay, Stripe events signed with Stripe's real scheme, reading what was recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import stripe
from sqlalchemy import func, select

from portal.balances import position
from portal.build.pages import invoice_slug
from portal.build.pipeline import build
from portal.core.signing import Signer
from portal.publish.publisher import publish
from portal.store import payments as paystore
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import make_app

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def standin():
    server = StripeStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def pay_settings(settings, tmp_path, standin):
    return settings.replace(stripe_secret_key="sk_test_standin", stripe_webhook_secret=WEBHOOK_SECRET,
                            stripe_api_base=standin.base, build_dir=str(tmp_path / "build"),
                            target=str(tmp_path / "published"), mail_url=f"outbox:{tmp_path / 'outbox'}")


@pytest.fixture
def built(pay_settings, store, export_dir):
    build(export_dir, pay_settings.build_dir, pay_settings, store, workers=1)
    publish(pay_settings, pay_settings.build_dir)  # as a deployment's nightly job does: the target holds the whole site
    return pay_settings


@pytest.fixture
def app(built, tmp_path):
    with make_app(built, tmp_path) as app:
        yield app
        app.extensions["jobs"].wait()


@pytest.fixture
def client(app):
    return app.test_client()


# --- helpers ---------------------------------------------------------------------------------------------------


def usd_customer(store):
    """(customer id, its open invoices) of a USD customer with at least two open invoices."""
    for data in store.customer_data():
        if data.customer.currency == "USD" and len(data.invoices) >= 2:
            return data.customer.customer_id, data.invoices
    raise AssertionError("the sample has no USD customer with two invoices")


def page_token(settings, customer_id):
    return Signer(settings).page_token("page", customer_id, 1)


def post_pay(client, settings, customer_id, invoice_ids, method="card", **form):
    data = {"page_token": page_token(settings, customer_id), "invoice": list(invoice_ids), "method": method, **form}
    return client.post("/pay", data=data)


def attempt_id_sent(standin, index=-1):
    """The attempt id of the `index`-th Checkout Session the stand-in was asked for."""
    return standin.creates()[index].param("client_reference_id")


def load_attempt(store, attempt_id):
    with store.begin() as conn:
        return paystore.get_attempt(conn, attempt_id)


def row_count(store, table):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def stripe_signature(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp or int(time.time()))


_event_ids = iter(range(1, 10**9))


def stripe_event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_test_{next(_event_ids)}", "object": "event", "type": kind,
            "api_version": stripe.api_version, "livemode": False, "created": int(time.time()),
            "data": {"object": {"livemode": False, **obj}}}


def send_event(client, event: dict, **sign):
    payload = json.dumps(event)
    headers = {"Stripe-Signature": stripe_signature(payload, **sign), "Content-Type": "application/json"}
    return client.post("/stripe/events", data=payload, headers=headers)


def session_completed(attempt_id, paid=True, intent="pi_1", email="payer@example.com"):
    return stripe_event("checkout.session.completed", {
              "id": "cs_x", "object": "checkout.session", "client_reference_id": attempt_id, "payment_intent": intent,
              "payment_status": "paid" if paid else "unpaid", "customer_details": {"email": email}})


def intent_event(kind, attempt_id, intent="pi_1", code=None):
    obj = {"id": intent, "object": "payment_intent", "metadata": {"attempt_id": attempt_id} if attempt_id else {},
           "latest_charge": "ch_1"}
    if code:
        obj["last_payment_error"] = {"code": code, "message": "Declined"}
    return stripe_event(kind, obj)


def settle(app):
    """Wait for the webhook's background jobs (re-render, publish, mail) submitted so far."""
    app.extensions["jobs"].wait()


def position_now(store, invoice_id):
    """The invoice's position now (portal/balances/position.py)."""
    with store.begin() as conn:
        return position.of_invoices(conn, [invoice_id])[invoice_id]


def invoice_page(settings, customer_id, invoice_id, folder=None) -> str:
    """The invoice's page as readers get it: on the target (or in `folder`)."""
    key = Signer(settings).customer_key(customer_id, 1)
    return (Path(folder or settings.target) / "c" / key / "i" / f"{invoice_slug(invoice_id)}.html").read_text()
