"""Payment history, receipts, AP address changes and approvers in a real browser (Chromium + Playwright, axe-core).

A card payment made through the pay form and settled by signed events shows in the history with its receipt page;
the contact form and the approver form lead to their webhook pages, and the links they mail (confirm an address,
approve an invoice) work by a button. At 1280 and 390 px every one of these pages fits the viewport and axe finds
nothing. Screenshots are kept in test-artifacts/.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as tests/browser/test_receipts.py.
"""

from __future__ import annotations

import json
import re
import time
from email import message_from_bytes, policy

import pytest
import requests
import stripe

from tests.browser.test_layout import WIDER_THAN_VIEWPORT
from tests.livesite import ARTIFACTS, WIDTHS, require_browser, served_sample_site
from tests.stripe_standin import StripeStandIn

pytestmark = pytest.mark.browser

SECRET = "whsec_selfservice_0123456789"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_browser()
    standin = StripeStandIn().start()
    try:
        with served_sample_site(tmp_path_factory.mktemp("browser-selfservice"), stripe_secret_key="sk_test_standin",
                                stripe_webhook_secret=SECRET, stripe_api_base=standin.base) as served:
            yield {**served, "standin": standin}
    finally:
        standin.stop()


def _check(browser, url: str, name: str, click: str = "") -> str:
    """Open `url` at each width: nothing wider than the viewport, axe finds nothing; a screenshot each. With `click`
    (a button's name), press it and check the page it leads to the same way. Returns the last address landed on."""
    from axe_playwright_python.sync_playwright import Axe

    ARTIFACTS.mkdir(exist_ok=True)
    landed, clicked = url, 0
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
            assert page.evaluate(WIDER_THAN_VIEWPORT) == [], f"{name} at {width} px"
            result = Axe().run(page)
            assert result.violations_count == 0, result.generate_report()
            # Confirming or approving happens once: the second width shows the "done already" page instead.
            if click and page.get_by_role("button", name=click).count():
                clicked += 1
                page.get_by_role("button", name=click).click()
                page.wait_for_load_state()
                landed = page.url
                page.screenshot(path=str(ARTIFACTS / f"{name}-done-{label}.png"), full_page=True)
                assert page.evaluate(WIDER_THAN_VIEWPORT) == [], f"{name} (after {click}) at {width} px"
                result = Axe().run(page)
                assert result.violations_count == 0, result.generate_report()
        finally:
            context.close()
    assert clicked or not click
    return landed


def _link(site, data, invoice_id: str = "") -> str:
    token = site["signer"].link_token(data.customer.customer_id, data.contacts[0].contact_id, invoice_id, 1)
    return f"{site['address']}/l/{token}"


def _event(site, kind: str, obj: dict) -> None:
    payload = json.dumps(site["standin"].event(kind, obj, event_id=f"evt_{kind}_{time.monotonic_ns()}"))
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=int(time.time()))
    response = requests.post(f"{site['address']}/stripe/events", data=payload, timeout=10,
                             headers={"Stripe-Signature": header, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    site["app"].extensions["jobs"].wait()


def _mail_link(site, to: str, path: str) -> str:
    site["app"].extensions["jobs"].wait()
    for eml in sorted((site["folder"] / "outbox").glob("*.eml")):
        message = message_from_bytes(eml.read_bytes(), policy=policy.default)
        if message["To"].addresses[0].addr_spec == to:
            found = re.search(rf"(http\S+{path}\S+)", message.get_body(("plain",)).get_content())
            if found:
                return found.group(1)
    raise AssertionError(f"no mail to {to} with {path}")


def test_a_settled_payment_shows_in_the_history_with_its_receipt(site, browser):
    data = next(d for d in site["store"].customer_data() if d.customer.currency == "USD" and d.invoices and d.contacts)
    first = data.invoices[0]
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    try:
        page = context.new_page()
        page.goto(_link(site, data))
        account = page.url
        page.locator(f"input[name=invoice][value='{first.invoice_id}']").check()
        page.get_by_role("button", name="Continue to payment").click()
        page.wait_for_url(f"{site['standin'].base}/checkout/**")
        session = site["standin"].sessions[page.locator("#session").inner_text()]
    finally:
        context.close()
    _event(site, "checkout.session.completed", site["standin"].session_object(session, payment_status="paid"))
    _check(browser, account, "history-account")
    receipt = re.search(r'href="(p/[^"]+\.html)"', requests.get(account, timeout=10).text).group(1)
    _check(browser, account.replace("index.html", receipt), "receipt")


def test_an_address_change_and_its_confirmation(site, browser):
    data = next(d for d in site["store"].customer_data() if d.invoices and d.contacts)
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 900})
    try:
        page = context.new_page()
        page.goto(_link(site, data))
        page.get_by_label("New address").fill("new-ap@browser.example")
        page.get_by_role("button", name="Send confirmation link").click()
        page.wait_for_load_state()
        assert "new-ap@browser.example" in page.inner_text("main")
        requested = page.url
    finally:
        context.close()
    assert requested.endswith("/contacts")
    link = _mail_link(site, "new-ap@browser.example", "/contacts/confirm/")
    _check(browser, link, "contact-confirm", click="Confirm this address")
    assert "new-ap@browser.example" in {c.email for c in site["store"].customer_data([data.customer.customer_id])[0]
                                         .contacts}


def test_send_to_my_approver_and_approve(site, browser):
    data = next(d for d in site["store"].customer_data()
                if d.invoices and any(c.role == "approver" for c in d.contacts))
    approver = next(c for c in data.contacts if c.role == "approver")
    invoice = data.invoices[0]
    _check(browser, _link(site, data, invoice.invoice_id), "invoice-approver", click="Send to my approver")
    link = _mail_link(site, approver.email, "/approve/")
    _check(browser, link, "approve", click="Approve for payment")
    with site["store"].begin() as conn:
        from portal.store.approvals import requests as approval_requests
        assert "approved" in [r.status for r in approval_requests(conn, [data.customer.customer_id])]
