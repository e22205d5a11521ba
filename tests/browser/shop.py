"""The payment browser tests' shop (the `shop` fixture, tests/browser/conftest.py): the sample site with payments on,
served with the webhook on one loopback port, Stripe stood in (tests/stripe_standin.py); and what those tests do
with it: open a customer's account page by its emailed link, and deliver a signed Stripe event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import stripe

from tests.livesite import require_browser, served_sample_site
from tests.smtpserver import SmtpServer
from tests.stripe_standin import StripeStandIn

WEBHOOK_SECRET = "whsec_browser_0123456789"


@contextmanager
def running_shop(folder: Path, *, smtp: bool = False, **settings: Any) -> Iterator[dict[str, Any]]:
    """The served site (tests/livesite.py's keys) plus `standin`, and `smtp` (a real SMTP server) when asked for;
    `settings` are the site's other settings."""
    require_browser()
    standin = StripeStandIn().start()
    mail = SmtpServer().start() if smtp else None
    try:
        with served_sample_site(folder, stripe_secret_key="sk_test_standin", stripe_webhook_secret=WEBHOOK_SECRET,
                                stripe_api_base=standin.base, **settings) as site:
            yield {**site, "standin": standin, **({"smtp": mail} if mail else {})}
    finally:
        if mail is not None:
            mail.stop()
        standin.stop()


def usd_customer(shop: dict[str, Any]) -> Any:
    """A USD customer with two invoices and a contact (its data)."""
    for data in shop["store"].customer_data():
        if data.customer.currency == "USD" and len(data.invoices) >= 2 and data.contacts:
            return data
    raise AssertionError("no USD customer with two invoices in the sample")


def account_link(shop: dict[str, Any], data: Any) -> str:
    """The customer's emailed link to its account page (its first contact's)."""
    token = shop["signer"].link_token(data.customer.customer_id, data.contacts[0].contact_id, "", 1)
    return f"{shop['address']}/l/{token}"


def send_event(shop: dict[str, Any], kind: str, obj: dict) -> None:
    """A Stripe event about `obj`, signed as Stripe signs it, delivered to the webhook; then its jobs are waited for."""
    payload = json.dumps(shop["standin"].event(kind, obj, event_id=f"evt_{kind}_{time.monotonic_ns()}"))
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET, timestamp=int(time.time()))
    response = requests.post(f"{shop['address']}/stripe/events", data=payload, timeout=10,
                             headers={"Stripe-Signature": header, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    shop["app"].extensions["jobs"].wait()
