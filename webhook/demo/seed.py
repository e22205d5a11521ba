"""A little history for the demo, so that every staff page has something on it: the invoice emails sent (what
`portal send` sends), a few page views, one settled card payment and one pending bank payment, a dispute and a
question.

Everything goes through the product's own paths, as a customer's browser and Stripe would drive them: the app's
routes (through its test client) for links, beacons, /pay, /dispute and /question, and the test checkout's
signed events to /stripe/events (over HTTP: the server must be listening). Seeded once per database: a store that
already has a payment attempt is left as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from portal.core.signing import Signer
from portal.mail.sending import send_invoices
from portal.store import payments as paystore
from portal.store.database import Store
from webhook.demo.checkout import Checkout

log = logging.getLogger(__name__)


def seed_history(app: Flask, store: Store) -> None:
    """Run in a thread beside the server; a failure is logged, never fatal (the demo works without history)."""
    try:
        with store.begin() as conn:
            if conn.execute(select(func.count()).select_from(paystore.payment_attempts)).scalar_one():
                return
        _seed(app, store)
        app.extensions["jobs"].wait()
        log.info("demo history seeded")
    except Exception:  # noqa: BLE001 - a demo without history still shows everything else
        log.exception("the demo history could not be seeded")


def _seed(app: Flask, store: Store) -> None:
    settings = app.extensions["portal"].settings
    signer = Signer(settings)
    send_invoices(settings, store)
    customers = [d for d in store.customer_data() if d.contacts and len(d.invoices) >= 2]
    client = app.test_client()
    for data in customers[:4]:  # views: the emailed link opened, the page seen (the beacon its script sends)
        customer_id, contact = data.customer.customer_id, data.contacts[0]
        client.get(f"/l/{signer.link_token(customer_id, contact.contact_id, '', 1)}")
        client.post(f"/r/{signer.page_token('view', customer_id, 1, 'account')}")
        client.post(f"/r/{signer.page_token('view', customer_id, 1, data.invoices[0].invoice_id)}")
    if not customers:
        return
    checkout: Checkout = app.extensions["demo_checkout"]
    disputing = customers[0]
    # Bank (ACH) debits are for US dollar invoices: one settled, one left pending for the visitor to settle.
    # With a single US dollar customer, its first two invoices (each customer here has at least two).
    usd = [d for d in customers[1:] if d.customer.currency == "USD"]
    banked = [(usd[0], 0), (usd[1], 0)] if len(usd) > 1 else [(usd[0], 0), (usd[0], 1)] if usd else []
    for (data, index), settle in zip(banked, (True, False), strict=False):
        _pay(client, checkout, signer, data, "us_bank_account", settle=settle, index=index)
    others = [d for d in customers[1:] if d not in usd[:2]]
    for data in others[:1]:
        _pay(client, checkout, signer, data, "card", settle=True)
    page = signer.page_token("page", disputing.customer.customer_id, 1)
    invoice = disputing.invoices[-1]
    client.post("/dispute", data={"page_token": page, "dispute_invoice": [invoice.invoice_id],
                                  "reason": settings.dispute_reasons[0],
                                  "message": "The unit price is not the one on our purchase order."})
    client.post("/question", data={"page_token": page, "invoice": disputing.invoices[0].invoice_id,
                                   "message": "Can you send us the delivery note for this invoice?"})


def _pay(client: Any, checkout: Checkout, signer: Signer, data: Any, method: str, settle: bool,
         index: int = 0) -> None:
    """Pay one of the customer's open invoices through /pay and the test checkout, as a customer would."""
    answer = client.post("/pay", data={"page_token": signer.page_token("page", data.customer.customer_id, 1),
                                       "invoice": [data.invoices[index].invoice_id], "method": method})
    session_id = (answer.headers.get("Location") or "").rsplit("/", 1)[-1]
    session = checkout.sessions.get(session_id)
    if session is None:
        log.warning("demo: /pay answered %s without a test checkout session", answer.status_code)
        return
    checkout.pay(session, data.contacts[0].email)
    if settle and method != "card":
        checkout.settle(session)
