"""Payment plans in a real browser (Chromium + Playwright) over the sample site served by the webhook: a collector
splits an invoice from the staff customer page, edits nothing and saves; the customer's pages show the plan and
the pay form asks for the first instalment; axe-core finds nothing, and nothing is wider than a 390 px phone.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as the other browser tests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from portal.balances import position
from tests.livesite import WIDTHS, axe_clean, require_browser, served_sample_site
from tests.staff_helpers import PASSWORD, add_staff

pytestmark = pytest.mark.browser
COLLECTOR = "cara@example.com"


@pytest.fixture(scope="module")
def portal_site(tmp_path_factory):
    require_browser()
    with served_sample_site(tmp_path_factory.mktemp("browser-plans")) as site:
        store = site["store"]
        add_staff(store, COLLECTOR, "collector")
        with store.begin() as conn:
            found = position.of_invoices(conn)
        # An English customer (the test reads English words) and its invoice owing the most.
        data = next(d for d in store.customer_data() if d.customer.locale.startswith("en")
                    and any(found[i.invoice_id].due > 300 for i in d.invoices))
        invoice = max(data.invoices, key=lambda i: found[i.invoice_id].due)
        site.update(data=data, invoice=invoice, due=found[invoice.invoice_id].due)
        yield site


def check(page, name: str) -> None:
    axe_clean(page, f"plans-{name}")


def test_a_collector_makes_a_plan_and_the_customer_pays_the_first_instalment(portal_site, browser):
    address, data, invoice, due = (portal_site["address"], portal_site["data"], portal_site["invoice"],
                                   portal_site["due"])
    customer_id = data.customer.customer_id
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{address}/staff/")
        page.get_by_label("Email").fill(COLLECTOR)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        page.goto(f"{address}/staff/customer?id={customer_id}")
        form = page.get_by_role("form", name="Split an invoice into instalments")
        form.get_by_label("Invoice").select_option(invoice.invoice_id)
        form.get_by_label("Every").select_option("weekly")
        form.get_by_label("First instalment on").fill(datetime.now(UTC).date().isoformat())
        form.get_by_label("Number of instalments (2 to 36)").fill("3")
        check(page, "staff-customer")
        form.get_by_role("button", name="Preview the instalments").click()
        page.wait_for_load_state()
        first = page.get_by_label("Instalment 1", exact=False)
        assert first.input_value() == f"{due // 3 // 100}.{due // 3 % 100:02d}"
        check(page, "staff-preview")
        page.get_by_role("button", name="Save the plan").click()
        page.wait_for_load_state()
        plans = page.get_by_role("region", name="Payment plans")
        assert plans.get_by_text(f"Plan #1: invoice {invoice.number}").is_visible()
        assert plans.get_by_role("cell", name="due", exact=True).is_visible()  # the first instalment, today
        assert plans.get_by_role("cell", name="not due yet").count() == 2
    finally:
        context.close()

    token = portal_site["signer"].link_token(customer_id, data.contacts[0].contact_id, invoice.invoice_id, 1)
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{address}/l/{token}")
        section = page.get_by_role("region", name=f"Payment plan for invoice {invoice.number}")
        deadline = time.monotonic() + 20
        while not section.count() and time.monotonic() < deadline:  # the refresh job re-renders the pages
            time.sleep(0.5)
            page.reload()
        assert section.is_visible()
        assert section.get_by_text("Due now").count() == 1 and section.get_by_text("Not yet due").count() == 2
        amount = page.locator(f'input[name="amount-{invoice.invoice_id}"]')
        assert amount.input_value() == f"{due // 3 // 100}.{due // 3 % 100:02d}"
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"]
        check(page, "customer-invoice-phone")
    finally:
        context.close()
