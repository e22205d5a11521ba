"""The collector's workbench in a real browser (Chromium + Playwright) over the sample site served by the webhook:
a collector finds their portfolio, logs a call in two clicks from the customer page, puts the customer on hold;
axe-core on every workbench page at desktop and phone widths.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as the other browser tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from portal.cli.main import cli
from portal.store.collect import promises
from portal.store.tables import customers
from tests.conftest import TEST_SECRET
from tests.livesite import WIDTHS, axe_clean, require_browser, served_sample_site
from tests.staff_helpers import PASSWORD, add_staff

pytestmark = pytest.mark.browser
COLLECTOR, ADMIN = "cara@example.com", "lead@example.com"


@pytest.fixture(scope="module")
def portal_site(tmp_path_factory):
    require_browser()
    with served_sample_site(tmp_path_factory.mktemp("browser-workbench")) as site:
        store = site["store"]
        add_staff(store, COLLECTOR, "collector")
        add_staff(store, ADMIN, "admin")
        today = datetime.now(UTC).date()
        # A customer with a billing contact and an invoice `portal remind` would chase today (overdue).
        data = [d for d in store.customer_data() if any(c.role == "billing" for c in d.contacts)
                and any(i.due_date < today - timedelta(days=1) for i in d.invoices)]
        mine = data[0].customer
        overdue = next(i for i in data[0].invoices if i.due_date < today - timedelta(days=1))
        with store.begin() as conn:
            conn.execute(update(customers).values(collector="someone@example.com"))
            conn.execute(update(customers).where(customers.c.customer_id == mine.customer_id)
                         .values(collector=COLLECTOR))
        # Another customer whose pages are in English (this test reads the page's English words).
        other = next(d for d in store.customer_data() if d.invoices and d.customer.customer_id != mine.customer_id
                     and d.customer.locale.startswith("en"))
        site.update(mine=mine, overdue=overdue, data=data[0], other=other)
        yield site


def check(page, name: str) -> None:
    axe_clean(page, f"workbench-{name}")


def log_in(page, address: str, email: str) -> None:
    page.goto(f"{address}/staff/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Overview").is_visible()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_a_collector_logs_a_call_in_two_clicks_and_puts_the_customer_on_hold(portal_site, browser, width):
    address, mine = portal_site["address"], portal_site["mine"]
    context = browser.new_context(viewport={"width": WIDTHS[width], "height": 900})
    try:
        page = context.new_page()
        log_in(page, address, COLLECTOR)
        page.goto(f"{address}/staff/customers")
        assert page.get_by_role("heading", name=f"Portfolio of {COLLECTOR}").is_visible()
        check(page, f"portfolio-{width}")
        page.get_by_role("link", name=mine.name).click()
        page.wait_for_load_state()
        check(page, f"customer-{width}")
        page.get_by_label("No answer").check()  # click one
        page.get_by_role("button", name="Log it").click()  # click two
        page.wait_for_load_state()
        touches = page.get_by_role("region", name="Touches and notes")
        assert touches.get_by_text("Call: no answer").first.is_visible()
        assert touches.get_by_text(COLLECTOR).first.is_visible()

        page.get_by_text("Put on hold").first.click()  # opens the details
        until = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
        page.get_by_label("Reason (the team reads it)").fill(f"Awaiting the <b>{width}</b> settlement")
        page.get_by_label("Last day of the hold").fill(until)
        page.get_by_role("button", name="Put on hold").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").get_by_text(f"On hold until {until}").is_visible()
        assert page.get_by_text(f"Awaiting the <b>{width}</b> settlement").first.is_visible()  # shown, not markup
        page.get_by_text("Change or release the hold").click()
        check(page, f"customer-held-{width}")
        page.get_by_role("button", name="Release the hold now").click()
        page.wait_for_load_state()
        assert page.get_by_text("On hold until").count() == 0
    finally:
        context.close()


def test_the_staff_users_page_changes_roles_accessibly(portal_site, browser):
    address = portal_site["address"]
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    try:
        page = context.new_page()
        log_in(page, address, ADMIN)
        page.goto(f"{address}/staff/users")
        check(page, "users")
        page.get_by_label(f"Role of {COLLECTOR}").select_option("manager")
        page.get_by_role("button", name=f"Change role of {COLLECTOR}").click()
        page.wait_for_load_state()
        assert page.get_by_label(f"Role of {COLLECTOR}").input_value() == "manager"
    finally:
        context.close()


def remind(site) -> str:
    settings = site["settings"]
    env = {"PORTAL_DATABASE_URL": settings.database_url, "PORTAL_SECRET_KEY": TEST_SECRET,
           "PORTAL_MAIL_URL": settings.mail_url, "PORTAL_SITE_URL": settings.site_url}
    result = CliRunner().invoke(cli, ["remind"], obj={}, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_promise_taken_on_a_call_pauses_reminders_and_breaks_when_the_day_passes_unpaid(portal_site, browser):
    address, mine, overdue, store = (portal_site["address"], portal_site["mine"], portal_site["overdue"],
                                     portal_site["store"])
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    try:
        page = context.new_page()
        log_in(page, address, COLLECTOR)
        page.goto(f"{address}/staff/customer?id={mine.customer_id}")
        day = datetime.now(UTC).date().isoformat()  # "we pay today"
        form = page.get_by_role("form", name="Log a touch")
        form.get_by_label("Reached").check()
        form.get_by_label(overdue.number, exact=True).check()
        form.get_by_label("Amount promised").fill("1.00")
        form.get_by_label("Promised by").fill(day)
        form.get_by_role("button", name="Log it").click()
        page.wait_for_load_state()
        promised = page.get_by_role("region", name="Promises to pay")
        assert promised.get_by_role("cell", name=day).is_visible()
        assert promised.get_by_role("cell", name="open", exact=True).is_visible()
        timeline = page.get_by_role("region", name="Touches and notes")
        assert timeline.get_by_text("Promise to pay").first.is_visible()
        check(page, "customer-promised")

        page.get_by_role("navigation", name="Staff sections").get_by_role("link", name="Worklist").click()
        page.wait_for_load_state()
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=mine.name, exact=True))
        # Taken with a call just now, so today's item for it is done already: it shows among the done.
        assert page.get_by_role("listitem").filter(has_text=f"Promise due today: {mine.name}").is_visible()
        check(page, "worklist")

        output = remind(portal_site)
        assert f"skipped: {mine.customer_id} invoice {overdue.number}: promised by {day}" in output

        with store.begin() as conn:  # the day passes (a week on), and nothing was paid
            conn.execute(update(promises).values(promised_for=datetime.now(UTC).date() - timedelta(days=7)))
        page.reload()
        assert row.get_by_role("cell", name="Promise broken").is_visible()
        assert page.get_by_role("row").nth(1).get_by_role("cell", name="Promise broken").is_visible()  # first
        page.goto(f"{address}/staff/customer?id={mine.customer_id}")
        assert promised.get_by_role("cell", name="broken", exact=True).is_visible()
        assert timeline.get_by_text("Promise broken").first.is_visible()
        assert "promised by" not in remind(portal_site)
    finally:
        context.close()


def test_a_customers_promise_on_their_page_reaches_the_collector(portal_site, browser):
    address, other = portal_site["address"], portal_site["other"]
    invoice = max(other.invoices, key=lambda i: i.balance)
    token = portal_site["signer"].link_token(other.customer.customer_id, other.contacts[0].contact_id, "", 1)
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{address}/l/{token}")
        section = page.get_by_role("region", name="Promise to pay")
        assert section.is_visible()
        check(page, "customer-account-promise-phone")
        day = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()
        section.get_by_label(invoice.number, exact=False).first.check()
        section.get_by_label("Amount you will pay").fill(f"{invoice.balance // 100}.{invoice.balance % 100:02d}")
        section.get_by_label("You will pay by (date)").fill(day)
        section.get_by_role("button", name="Send my promise").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Promise to pay received").is_visible()
        check(page, "customer-promise-received-phone")

        staff = context.new_page()
        log_in(staff, address, ADMIN)
        staff.goto(f"{address}/staff/customer?id={other.customer.customer_id}")
        promised = staff.get_by_role("region", name="Promises to pay")
        assert promised.get_by_role("cell", name="the customer, on their page").is_visible()
        assert promised.get_by_role("cell", name=day).is_visible()
    finally:
        context.close()


def test_a_manager_sees_the_teams_worklist_and_reassigns(portal_site, browser):
    address = portal_site["address"]
    context = browser.new_context(viewport={"width": WIDTHS["phone"], "height": 900})
    try:
        page = context.new_page()
        log_in(page, address, ADMIN)
        page.goto(f"{address}/staff/worklist")
        assert page.get_by_text("The team's worklist").is_visible()
        check(page, "worklist-team-phone")
        field = page.get_by_label("New collector of").first
        name = field.get_attribute("id")
        field.fill("newbie@example.com")
        page.locator(f"#{name} ~ button").click()
        page.wait_for_load_state()
        page.goto(f"{address}/staff/customers?collector=newbie@example.com")
        assert page.get_by_role("heading", name="Portfolio of newbie@example.com").is_visible()
        assert page.get_by_role("list").last.get_by_role("link").count() == 1
    finally:
        context.close()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_activity_report_is_accessible(portal_site, browser, width):
    address = portal_site["address"]
    context = browser.new_context(viewport={"width": WIDTHS[width], "height": 900})
    try:
        page = context.new_page()
        log_in(page, address, ADMIN)
        page.get_by_role("navigation", name="Staff sections").get_by_role("link", name="Activity").click()
        page.wait_for_load_state()
        assert page.get_by_role("rowheader", name="(team)").is_visible()
        assert page.get_by_role("img", name="Touches by hour of day (UTC), (team)").is_visible()
        check(page, f"activity-{width}")
    finally:
        context.close()
