"""The staff dashboard in a real browser (Chromium + Playwright), over the sample site served by the webhook:
log in, see the KPI charts, filter invoices nobody viewed, open a customer's timeline, resolve a dispute,
download a CSV; screenshots of every page at desktop and phone widths, and axe-core on each.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as the other browser tests.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from portal.disputes.service import submit_dispute
from portal.store import disputes as disputestore
from portal.store.tables import events
from tests.livesite import ARTIFACTS, WIDTHS, require_browser, served_sample_site
from tests.staff_helpers import PASSWORD, add_staff

pytestmark = pytest.mark.browser
ADMIN = "lead@example.com"


@pytest.fixture(scope="module")
def portal_site(tmp_path_factory):
    require_browser()
    with served_sample_site(tmp_path_factory.mktemp("browser-staff")) as site:
        store = site["store"]
        add_staff(store, ADMIN, "admin")
        data = [d for d in store.customer_data() if d.invoices]
        sent = datetime.now(UTC) - timedelta(days=15)
        rows = [{"kind": "email_sent", "occurred_at": sent, "customer_id": d.customer.customer_id,
                 "contact_id": d.contacts[0].contact_id if d.contacts else "", "invoice_id": i.invoice_id,
                 "document_id": "", "ip": "", "user_agent": "", "detail": ""}
                for d in data for i in d.invoices]
        viewed = data[0].invoices[0]
        rows.append({**rows[0], "kind": "page_viewed", "invoice_id": viewed.invoice_id,
                     "occurred_at": sent + timedelta(days=1), "user_agent": "Mozilla/5.0"})
        with store.begin() as conn:
            conn.execute(insert(events), rows)
        disputed = data[-1]
        submit_dispute(store, site["settings"], disputed.customer.customer_id, [disputed.invoices[-1].invoice_id],
                       {}, "damaged", "Two boxes arrived <b>crushed</b>")
        site.update(viewed=viewed, unviewed=sum(len(d.invoices) for d in data) - 1, disputed=disputed)
        yield site


def _check(page, name: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    assert result.violations_count == 0, result.generate_report()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"staff-{name}.png"), full_page=True)


def _log_in(page, address: str) -> None:
    page.goto(f"{address}/staff/")
    assert page.url.startswith(f"{address}/staff/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Overview").is_visible()


def test_log_in_filter_open_a_timeline_resolve_and_download(portal_site, browser, tmp_path):
    address, store = portal_site["address"], portal_site["store"]
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900}, accept_downloads=True)
    try:
        page = context.new_page()
        _log_in(page, address)
        assert page.locator("svg[role=img]").count() >= 3
        _check(page, "overview-desktop")

        page.get_by_role("link", name="Receipts", exact=True).click()
        page.get_by_label("Not viewed after (days)").fill("7")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_load_state()
        rows = page.locator("main table tbody tr")
        assert rows.count() == portal_site["unviewed"]
        assert page.get_by_text(portal_site["viewed"].number, exact=True).count() == 0
        _check(page, "receipts-unopened-desktop")

        with page.expect_download() as download:
            page.get_by_role("link", name="Download these rows as CSV").click()
        exported = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
        assert len(exported) == portal_site["unviewed"]
        assert portal_site["viewed"].invoice_id not in {r["invoice_id"] for r in exported}

        first = rows.first.locator("a").first
        name = first.inner_text()
        first.click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name=name).is_visible()
        assert page.locator("main table tbody tr").count() >= 1
        assert page.get_by_role("cell", name="Email sent").count() >= 1
        _check(page, "timeline-desktop")

        page.get_by_role("link", name="Disputes", exact=True).click()
        page.wait_for_load_state()
        assert page.get_by_text("Two boxes arrived <b>crushed</b>").is_visible()  # escaped, shown as typed
        # Why invoices are disputed: the chart is an image named by its title, with a table as its alternative.
        assert page.get_by_role("img", name="Disputes by reason (open ones in brackets)").is_visible()
        assert page.get_by_role("rowheader", name="damaged").is_visible()
        _check(page, "disputes-desktop")
        page.get_by_label("Outcome").select_option("credit_issued")
        page.get_by_label("Note to the customer (emailed)").fill("Credit note CN-12 covers both boxes.")
        page.get_by_role("button", name="Resolve").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text().endswith("is resolved")
        with store.begin() as conn:
            [row] = [d for d in disputestore.all_disputes(conn)
                     if d.customer_id == portal_site["disputed"].customer.customer_id]
        assert (row.status, row.outcome) == ("resolved", "credit_issued")
    finally:
        context.close()


def test_every_staff_page_at_phone_width_has_no_accessibility_violation(portal_site, browser):
    address = portal_site["address"]
    customer_id = portal_site["disputed"].customer.customer_id
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 800})
    try:
        page = context.new_page()
        _log_in(page, address)
        for name, path in [("overview", "/staff/"), ("receipts", "/staff/receipts"), ("payments", "/staff/payments"),
                           ("disputes", "/staff/disputes"), ("customers", "/staff/customers?q=a"),
                           ("timeline", f"/staff/customer?id={customer_id}"), ("users", "/staff/users")]:
            page.goto(f"{address}{path}")
            assert page.locator("h1").count() == 1
            _check(page, f"{name}-phone")
        page.get_by_role("button", name="Log out").click()
        page.wait_for_load_state()
        page.goto(f"{address}/staff/receipts")
        assert "/staff/login" in page.url
        _check(page, "login-phone")
    finally:
        context.close()
