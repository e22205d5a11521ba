"""`portal demo` itself in a real browser (Chromium + Playwright): the command runs as a person runs it (its own
process, its own folder, a free port), and the test follows what it prints. Open a printed customer link, pay two
invoices by bank on the local test checkout, see "Payment pending", press "Settle" on the test checkout's page, see
"Paid" on the customer's page once the job runner re-published it, find the receipt in the mail viewer, log in with
the printed staff login and find the payment on /staff/payments.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as the other browser tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from tests.livesite import ARTIFACTS, require_browser
from tests.ports import free_port

pytestmark = pytest.mark.browser

LINK = re.compile(r"^\s+(\S+)\s+(\S+@\S+)\s+(http://\S+/l/\S+)$")
LOGIN = re.compile(r"log in as (\S+), password (\S+)$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`python -m portal demo` in a folder of its own; yields the address, the printed links and staff login."""
    require_browser()
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "STRIPE_", "WEBHOOK_"))}
    env["PORTAL_SECRET_KEY"] = "demo-browser-test-secret-0123456789"
    process = subprocess.Popen([sys.executable, "-m", "portal", "demo", "--port", str(port), "--customers", "6",
                                "--invoices", "30"], cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    printed: list[str] = []
    reader = None
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise AssertionError("portal demo ended early:\n" + "".join(printed))
            printed.append(line)
            if line.startswith("serving on "):
                break
        # Keep reading what it logs, or a full pipe would stop the server mid-test.
        reader = threading.Thread(target=lambda: printed.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        links = [m.group(3) for line in printed if (m := LINK.match(line.rstrip("\n")))]
        login = next(m.groups() for line in printed if (m := LOGIN.search(line.rstrip("\n"))))
        yield {"address": f"http://127.0.0.1:{port}", "links": links, "login": login, "process": process,
               "folder": folder, "printed": printed}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if reader is not None:
            reader.join(5)
        process.stdout.close()  # type: ignore[union-attr]


def _until(page, url: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    """Reload `url` until `ready()`: the demo's job runner re-renders and publishes a customer after each event."""
    deadline = time.monotonic() + seconds
    while True:
        page.goto(url)
        if ready():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not change in {seconds} s")
        time.sleep(0.5)


def _bank_page(page, demo) -> str:
    """A printed link whose page offers bank payment for at least two open invoices."""
    for link in demo["links"]:
        page.goto(link)
        if page.locator("input[name=method][value=us_bank_account]").count() and \
                page.locator("input[name=invoice]").count() >= 2:
            return link
    raise AssertionError("no printed link offers bank payment for two invoices")


def test_the_demo_shows_a_bank_payment_pending_then_paid_with_receipt_and_staff_view(demo, page):
    address = demo["address"]
    assert len(demo["links"]) >= 3
    link = _bank_page(page, demo)
    assert page.locator("#demo-banner").inner_text().startswith("TEST MODE: no money moves.")
    invoices = page.locator("input[name=invoice]")
    chosen = [invoices.nth(0).get_attribute("value"), invoices.nth(1).get_attribute("value")]
    for invoice_id in chosen:
        page.locator(f"input[name=invoice][value='{invoice_id}']").check()
    page.locator("input[name=method][value=us_bank_account]").check()
    paid_before = page.locator(".badge-paid").count()
    page.get_by_role("button", name="Continue to payment").click()

    page.wait_for_url(f"{address}/demo/checkout/cs_test_*")  # the session the real stripe client created
    assert "TEST MODE: no money moves." in page.locator("#demo-banner").inner_text()
    numbers = [name.removeprefix("Invoice ").split(" ")[0]
               for name in page.locator("table tbody tr td:first-child").all_inner_texts()]
    assert len(numbers) == 2
    page.get_by_role("button", name=re.compile("^Pay by bank")).click()
    page.wait_for_url(f"{address}/pay/done?*")
    assert page.get_by_role("heading", name="Bank payment pending").is_visible()
    reference = page.locator("text=Payment reference:").inner_text().split(": ", 1)[1].strip()

    _until(page, link, lambda: page.locator(".badge-pending").count() >= 2)
    assert page.get_by_text("Payment pending").first.is_visible()
    for invoice_id in chosen:  # pending invoices are not offered for payment again
        assert page.locator(f"input[name=invoice][value='{invoice_id}']").count() == 0

    page.goto(f"{address}/demo/checkout/")
    row = page.locator(f"tr[data-attempt='{reference}']")
    assert "pending" in row.inner_text()
    row.get_by_role("button", name="Settle").click()
    page.wait_for_url(f"{address}/demo/checkout/")
    assert "succeeded" in page.locator(f"tr[data-attempt='{reference}']").inner_text()

    _until(page, link, lambda: page.locator(".badge-paid").count() >= paid_before + 2)
    assert page.get_by_text("Paid").first.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-paid.png"), full_page=True)

    # The receipt the job runner emailed, in the demo's mail viewer.
    receipt = page.get_by_role("link", name=re.compile("^Payment received"))
    _until(page, f"{address}/demo/outbox/", lambda: receipt.count() >= 1)
    receipt.first.click()
    frame = page.frame_locator("iframe.mail-frame")
    assert reference in frame.locator("body").inner_text()
    assert page.locator("iframe.mail-frame").get_attribute("sandbox") == ""

    # The printed staff login, and the payment on /staff/payments.
    email, password = demo["login"]
    page.goto(f"{address}/staff/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{address}/staff/payments")
    row = page.locator("tbody tr", has_text=numbers[0]).filter(has_text=numbers[1])
    assert row.count() == 1
    assert row.locator(".badge").inner_text() == "succeeded"
    page.screenshot(path=str(ARTIFACTS / "demo-staff-payments.png"), full_page=True)
    # The seeded history: every dashboard page has something on it (a pending bank payment, a dispute, a question).
    deadline = time.monotonic() + 60
    while page.locator("tbody tr .badge", has_text="pending").count() == 0 and time.monotonic() < deadline:
        time.sleep(1)
        page.goto(f"{address}/staff/payments")
    assert page.locator("tbody tr .badge", has_text="pending").count() >= 1, "".join(demo["printed"][-40:])
    page.goto(f"{address}/staff/disputes")
    assert "D-1" in page.content()
