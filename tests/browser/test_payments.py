"""The pay form in a real browser (Chromium + Playwright): tick two invoices, choose bank, see the total
update, land on the Stripe stand-in's checkout page for the right session; then signed events make the
page say "payment pending" and then "paid". axe-core finds nothing on the pay form.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as tests/browser/test_receipts.py.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
import stripe

from tests.livesite import ARTIFACTS, WIDTHS, require_browser, served_sample_site
from tests.stripe_standin import StripeStandIn

pytestmark = pytest.mark.browser

WEBHOOK_SECRET = "whsec_browser_0123456789"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The sample site with payments on, served with the webhook on one loopback port; Stripe stood in."""
    require_browser()
    standin = StripeStandIn().start()
    try:
        with served_sample_site(tmp_path_factory.mktemp("browser-pay"), stripe_secret_key="sk_test_standin",
                                stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=standin.base,
                                ach_discount_bps=100) as site:
            yield {**site, "standin": standin}
    finally:
        standin.stop()


def _usd_customer(shop):
    for data in shop["store"].customer_data():
        if data.customer.currency == "USD" and len(data.invoices) >= 2 and data.contacts:
            return data
    raise AssertionError("no USD customer with two invoices in the sample")


def _account_link(shop, data) -> str:
    token = shop["signer"].link_token(data.customer.customer_id, data.contacts[0].contact_id, "", 1)
    return f"{shop['address']}/l/{token}"


def _send(shop, kind: str, obj: dict) -> None:
    payload = json.dumps(shop["standin"].event(kind, obj, event_id=f"evt_{kind}_{time.monotonic_ns()}"))
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET, timestamp=int(time.time()))
    response = requests.post(f"{shop['address']}/stripe/events", data=payload, timeout=10,
                             headers={"Stripe-Signature": header, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    shop["app"].extensions["jobs"].wait()


def test_pay_two_invoices_by_bank_then_pending_then_paid(shop, page):
    data = _usd_customer(shop)
    first, second = data.invoices[:2]
    page.goto(_account_link(shop, data))
    assert page.url.endswith("/index.html")
    total = page.locator("#pay-total")
    assert total.inner_text() == "choose at least one invoice"  # pay.js ran (CSP allows 'self' scripts)
    page.locator(f"input[name=invoice][value='{first.invoice_id}']").check()
    page.locator(f"input[name=invoice][value='{second.invoice_id}']").check()
    page.get_by_label("Bank transfer (ACH)", exact=False).check()
    subtotal = first.balance + second.balance
    expected = subtotal - (subtotal * 100 + 5000) // 10000
    assert total.inner_text() == f"${expected // 100:,}.{expected % 100:02d}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "pay-form-desktop.png"), full_page=True)

    page.get_by_role("button", name="Continue to payment").click()
    standin = shop["standin"]
    page.wait_for_url(f"{standin.base}/checkout/**")
    sent = standin.creates()[-1]
    session_id = page.locator("#session").inner_text()
    assert standin.sessions[session_id]["client_reference_id"] == sent.param("client_reference_id")
    assert sent.param("allowed_payment_method_types[0]") == "us_bank_account"
    assert not any(k.startswith("payment_method_types") for k in sent.keys())
    assert {sent.param("line_items[0][price_data][product_data][name]"),
            sent.param("line_items[1][price_data][product_data][name]")} == {
        f"Invoice {first.number} (bank payment discount applied)", f"Invoice {second.number} (bank payment discount "
                                                                   "applied)"}
    # What Stripe charges is exactly what the page's script showed.
    assert int(sent.param("line_items[0][price_data][unit_amount]")) + int(
        sent.param("line_items[1][price_data][unit_amount]")) == expected
    session = standin.sessions[session_id]
    assert session["client_reference_id"] == sent.param("client_reference_id")
    _send(shop, "checkout.session.completed", standin.session_object(session, payment_status="unpaid"))
    _send(shop, "payment_intent.processing", standin.intent(session, "processing"))
    page.goto(_account_link(shop, data))
    assert page.locator(".badge-pending").count() == 2
    assert page.get_by_text("Payment pending").first.is_visible()

    _send(shop, "checkout.session.async_payment_succeeded", standin.session_object(session, payment_status="paid"))
    page.goto(_account_link(shop, data))
    assert page.locator(".badge-paid").count() == 2 and page.locator(".badge-pending").count() == 0
    # Paid invoices leave the pay form.
    assert page.locator(f"input[name=invoice][value='{first.invoice_id}']").count() == 0


def test_the_pay_form_has_no_accessibility_violations(shop, browser):
    from axe_playwright_python.sync_playwright import Axe

    data = next(d for d in shop["store"].customer_data() if d.invoices and d.contacts)
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = context.new_page()
            page.goto(_account_link(shop, data))
            assert page.locator("form.pay-form").count() == 1
            result = Axe().run(page, context="section[aria-labelledby=pay-h]")
            assert result.violations_count == 0, result.generate_report()
            page.screenshot(path=str(ARTIFACTS / f"pay-form-{label}.png"), full_page=True)
        finally:
            context.close()
