"""A real browser (Debian's Chromium driven by Playwright) against the webhook and the built site on one
loopback port: an emailed link lands on the page, the beacon records exactly one `page_viewed` per view,
a plain HTTP fetch (what a mail scanner does) records `link_opened` only, and axe-core finds no
accessibility violation on the pages a customer reaches. Screenshots go to test-artifacts/.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.livesite import ARTIFACTS, WIDTHS, require_browser, served_sample_site
from tests.webhook_helpers import old_link_token

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """The sample site built for http://127.0.0.1:PORT, served with the webhook by werkzeug in a thread."""
    require_browser()
    with served_sample_site(tmp_path_factory.mktemp("browser")) as site:
        yield site


def _customer(portal) -> tuple[str, str, str]:
    """(customer id, contact id, an open invoice id) of the first customer."""
    [data, *_] = portal["store"].customer_data()
    return data.customer.customer_id, data.contacts[0].contact_id, data.invoices[0].invoice_id


def _link(portal, invoice_id: str = "") -> str:
    customer, contact, _ = _customer(portal)
    return f"{portal['address']}/l/{portal['signer'].link_token(customer, contact, invoice_id, 1)}"


def _wait_for(count, expected: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    value = count()
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = count()
    return value


def _counts(portal, customer: str) -> tuple[int, int]:
    store = portal["store"]
    return (store.count_events(kind="link_opened", customer_id=customer),
            store.count_events(kind="page_viewed", customer_id=customer))


def test_a_person_opening_the_link_records_one_view_per_page_view(portal, page):
    customer, _, invoice_id = _customer(portal)
    opened, viewed = _counts(portal, customer)
    page.goto(_link(portal))
    assert page.url.endswith("/index.html") and "/c/" in page.url
    assert _wait_for(lambda: _counts(portal, customer)[1], viewed + 1) == viewed + 1
    time.sleep(0.5)  # a second beacon would have arrived by now
    assert _counts(portal, customer) == (opened + 1, viewed + 1)

    page.reload()  # a reload is a second view, and not a second link opening
    assert _wait_for(lambda: _counts(portal, customer)[1], viewed + 2) == viewed + 2
    assert _counts(portal, customer) == (opened + 1, viewed + 2)

    page.goto(_link(portal, invoice_id))
    assert "/i/" in page.url
    store = portal["store"]
    assert _wait_for(lambda: store.count_events(kind="page_viewed", invoice_id=invoice_id), 1) == 1


def test_a_plain_fetch_of_the_link_records_link_opened_only(portal):
    """What a mail scanner does: fetch the link (and even the page), run no script."""
    customer, _, _ = _customer(portal)
    opened, viewed = _counts(portal, customer)
    first = requests.get(_link(portal), allow_redirects=False, timeout=10)
    assert first.status_code == 303
    followed = requests.get(_link(portal), timeout=10)
    assert followed.status_code == 200 and "portal-beacon" in followed.text
    time.sleep(1)
    assert _counts(portal, customer) == (opened + 2, viewed)


def _pages(portal) -> dict[str, str]:
    customer, contact, invoice_id = _customer(portal)
    settings = portal["settings"]
    expired = old_link_token(settings, customer, contact, "", 1, age_days=settings.link_ttl_days + 1)
    # The statement has no emailed link of its own: it is reached from the account page.
    return {"account": _link(portal), "invoice": _link(portal, invoice_id), "statement": _link(portal),
            "expired": f"{portal['address']}/l/{expired}"}




@pytest.mark.parametrize("name", ["account", "invoice", "statement", "expired"])
def test_pages_have_no_accessibility_violations(portal, browser, name):
    from axe_playwright_python.sync_playwright import Axe

    url = _pages(portal)[name]
    ARTIFACTS.mkdir(exist_ok=True)
    results = []
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            if name == "statement":
                page.goto(page.url.replace("/index.html", "/statement.html"))
                assert page.url.endswith("/statement.html")
            if name == "expired":
                assert page.get_by_role("button", name="Email me a fresh link").is_visible()
            page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
            # Nothing wider than the screen: the page fits a phone without sideways scrolling of the body.
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"
            results.append(Axe().run(page))
        finally:
            context.close()
    for result in results:
        assert result.violations_count == 0, result.generate_report()


def test_the_fresh_link_button_mails_the_contact_on_file(portal, page, tmp_path):
    """Through the real page: press the button, land on "check your email"; an email is in the outbox."""
    outbox = Path(portal["settings"].mail_url.split(":", 1)[1])
    before = len(list(outbox.glob("*.eml"))) if outbox.is_dir() else 0
    page.goto(_pages(portal)["expired"])
    page.get_by_role("button", name="Email me a fresh link").click()
    page.wait_for_url("**/fresh/sent")
    assert page.get_by_role("heading", name="Check your email").is_visible()
    assert len(list(outbox.glob("*.eml"))) == before + 1
