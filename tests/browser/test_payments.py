"""The pay form in a real browser (Chromium + Playwright): tick two invoices, choose bank, see the total
update, land on the Stripe stand-in's checkout page for the right session; then signed events make the
page say "payment pending" and then "paid". axe-core finds nothing on the pay form.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as tests/browser/test_receipts.py.
"""

from __future__ import annotations

import pytest

from tests.browser.shop import account_link, send_event, usd_customer
from tests.livesite import ARTIFACTS, WIDTHS

pytestmark = pytest.mark.browser

SHOP = {"ach_discount_bps": 100}  # the shop fixture's site (tests/browser/conftest.py)


def test_pay_two_invoices_by_bank_then_pending_then_paid(shop, page):
    data = usd_customer(shop)
    first, second = data.invoices[:2]
    page.goto(account_link(shop, data))
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
    send_event(shop, "checkout.session.completed", standin.session_object(session, payment_status="unpaid"))
    send_event(shop, "payment_intent.processing", standin.intent(session, "processing"))
    page.goto(account_link(shop, data))
    assert page.locator(".badge-pending").count() == 2
    assert page.get_by_text("Payment pending").first.is_visible()

    send_event(shop, "checkout.session.async_payment_succeeded", standin.session_object(session, payment_status="paid"))
    page.goto(account_link(shop, data))
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
            page.goto(account_link(shop, data))
            assert page.locator("form.pay-form").count() == 1
            result = Axe().run(page, context="section[aria-labelledby=pay-h]")
            assert result.violations_count == 0, result.generate_report()
            page.screenshot(path=str(ARTIFACTS / f"pay-form-{label}.png"), full_page=True)
        finally:
            context.close()
