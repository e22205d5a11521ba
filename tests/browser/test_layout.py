"""The customer pages lead with the action and fit a phone (Chromium + Playwright, axe-core).

At 390 px no element of the account, invoice or statement page reaches past the viewport's right edge (tables
become stacked cards instead of scrolling sideways), every status badge is on screen, and axe finds nothing; the
amount due and the one Pay button come before every table. Screenshots at 1280 and 390 px are kept in
test-artifacts/.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as tests/browser/test_receipts.py.
"""

from __future__ import annotations

import pytest

from tests.livesite import ARTIFACTS, WIDTHS, require_browser, served_sample_site
from tests.stripe_standin import StripeStandIn

pytestmark = pytest.mark.browser

# Every element whose box ends right of the viewport (what makes a phone scroll sideways or cut text off).
# Elements placed off-screen to the LEFT on purpose (the skip link until focused) do not widen the page.
WIDER_THAN_VIEWPORT = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) { continue; }
    if (box.right > width + 0.5 || box.width > width + 0.5) {
      found.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(box.left)}..${Math.round(box.right)}`);
    }
  }
  return found;
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_browser()
    standin = StripeStandIn().start()
    try:
        with served_sample_site(tmp_path_factory.mktemp("browser-layout"), stripe_secret_key="sk_test_standin",
                                stripe_webhook_secret="whsec_layout_0123456789", stripe_api_base=standin.base,
                                ach_discount_bps=100) as served:
            yield served
    finally:
        standin.stop()


def _richest(site):
    """The sample customer with the most invoices (and credits, when one has them): the longest tables."""
    found = [d for d in site["store"].customer_data() if d.invoices and d.contacts]
    return max(found, key=lambda d: (len(d.invoices) + len(d.credits), bool(d.credits)))


def _urls(site) -> dict[str, str]:
    data = _richest(site)
    contact = data.contacts[0].contact_id
    signer = site["signer"]
    account = f"{site['address']}/l/{signer.link_token(data.customer.customer_id, contact, '', 1)}"
    invoice_id = max(data.invoices, key=lambda i: len(site["store"].customer_data([data.customer.customer_id])[0]
                                                       .lines.get(i.invoice_id, []))).invoice_id
    invoice = f"{site['address']}/l/{signer.link_token(data.customer.customer_id, contact, invoice_id, 1)}"
    return {"account": account, "invoice": invoice, "statement": account}


@pytest.mark.parametrize("name", ["account", "invoice", "statement"])
def test_no_element_is_wider_than_a_phone(site, browser, name):
    from axe_playwright_python.sync_playwright import Axe

    url = _urls(site)[name]
    ARTIFACTS.mkdir(exist_ok=True)
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            if name == "statement":
                page.goto(page.url.replace("/index.html", "/statement.html"))
            page.screenshot(path=str(ARTIFACTS / f"layout-{name}-{label}.png"), full_page=True)
            assert page.evaluate(WIDER_THAN_VIEWPORT) == [], f"{name} at {width} px"
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            for badge in page.locator(".badge").all():  # the status column is never pushed off screen
                box = badge.bounding_box()
                assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= width
            result = Axe().run(page)
            assert result.violations_count == 0, result.generate_report()
        finally:
            context.close()


@pytest.mark.parametrize("name", ["account", "invoice"])
def test_amount_due_and_pay_button_come_first(site, browser, name):
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 740})
    try:
        page = context.new_page()
        page.goto(_urls(site)[name])
        pay = page.get_by_role("link", name="Pay", exact=True)
        assert pay.count() == 1
        # Above the fold on a phone, and before every table of the page.
        assert pay.is_visible() and pay.bounding_box()["y"] + pay.bounding_box()["height"] <= 740
        assert page.evaluate("""() => {
          const pay = document.querySelector("a.button[href='#pay']");
          return [...document.querySelectorAll("table")].every(
            t => pay.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING);
        }""")
        assert page.locator(".lead dd").first.inner_text().strip() != ""
        pay.click()
        # The button leads to the pay form, whose table lists each invoice with what is open and what to pay.
        assert page.url.endswith("#pay")
        form = page.locator("form.pay-form")
        assert form.locator("table thead th").all_inner_texts()[1:] == ["Invoice", "Open", "Amount to pay"]
        assert page.locator("#pay-total").inner_text() != ""
    finally:
        context.close()


def test_running_total_follows_ticks_and_parts(site, browser):
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 900})
    try:
        page = context.new_page()
        data = _richest(site)
        page.goto(_urls(site)["account"])
        total = page.locator("#pay-total")
        assert total.inner_text() == "choose at least one invoice"  # the words the template gave the script
        boxes = page.locator("form.pay-form input[name=invoice]")
        first = boxes.first
        first.check()
        page.locator("form.pay-form").get_by_label("Card", exact=False).check()  # not the saved-method form's
        open_minor = int(first.get_attribute("data-open"))
        shown = total.inner_text()
        assert shown.replace(",", "") .endswith(f"{open_minor // 100}.{open_minor % 100:02d}")
        part = page.locator(f"#{first.get_attribute('data-part')}")
        part.fill("1.00")
        assert total.inner_text().endswith("1.00")
        assert data.customer.customer_id not in total.inner_text()
    finally:
        context.close()
