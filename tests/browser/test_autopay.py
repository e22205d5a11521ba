"""Saved methods and autopay in a real browser (Chromium + Playwright) against the Stripe stand-in and a real SMTP
server: save a card and a bank account through Checkout in setup mode, turn autopay on, `portal autopay` (as of a
given moment) notices first and then debits on the due date, a failed bank debit emails the customer, removing
the card stops autopay. axe-core finds nothing in the section, at phone and desktop widths, and nothing in it is
wider than a 390 px screen.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as tests/browser/test_receipts.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as clock

import pytest

from portal.payments.autopay_run import run_autopay
from portal.payments.methods import stripe_client
from tests.browser.shop import account_link, send_event, usd_customer
from tests.livesite import ARTIFACTS, WIDTHS

pytestmark = pytest.mark.browser

SHOP = {"smtp": True}  # the shop fixture (tests/browser/conftest.py), with a real SMTP server


def _save(shop, page, data, label: str, number: str) -> None:
    page.goto(account_link(shop, data))
    page.locator("form.setup-form").get_by_label(label, exact=True).check()
    page.get_by_role("button", name="Continue to our payment provider").click()
    standin = shop["standin"]
    page.wait_for_url(f"{standin.base}/checkout/**")
    session = standin.sessions[page.locator("#session").inner_text()]
    for kind, obj in standin.complete_setup(session, number):
        send_event(shop, kind, obj)


def _autopay(shop, now: datetime):
    settings = shop["settings"].replace(mail_url=shop["smtp"].url, mail_retry_delay_ms=0)
    result = run_autopay(settings, shop["store"], stripe_client(settings), now)
    runner = shop["app"].extensions["jobs"]
    runner.wake()  # the refresh and receipt jobs the run queued: `portal worker` in production
    runner.wait()
    return result


def _at(day, hour=9):
    return datetime.combine(day, clock(hour), tzinfo=UTC)


def _intents(shop):
    return [r for r in shop["standin"].requests if r.method == "POST" and r.path == "/v1/payment_intents"]


def test_save_card_and_bank_then_autopay_notices_debits_fails_and_stops(shop, page):
    data = usd_customer(shop)
    smtp, standin = shop["smtp"], shop["standin"]
    page.goto(account_link(shop, data))
    assert page.locator("#mandate-text").is_visible()  # what a bank debit authorises, shown before Stripe
    _save(shop, page, data, "Card", "4242424242424242")
    _save(shop, page, data, "US bank account (ACH debit)", "000123456789")
    page.goto(account_link(shop, data))
    methods = page.locator("#methods .method-list")
    assert "ending in 4242" in methods.inner_text() and "ending in 6789" in methods.inner_text()

    # Autopay with the bank account, on the due date.
    page.get_by_label("Pay with").select_option(label=next(
        o for o in page.locator("#ap-method option").all_inner_texts() if "6789" in o))
    page.get_by_label("Each invoice on its due date").check()
    page.get_by_role("button", name="Turn on automatic payment").click()
    assert page.get_by_role("heading", name="Automatic payment is on").is_visible()

    first, last = min(data.invoices, key=lambda i: i.due_date), max(data.invoices, key=lambda i: i.due_date)
    assert first.due_date < last.due_date
    _autopay(shop, _at(first.due_date - timedelta(days=3)))
    notices = [m for m in smtp.messages if f"Automatic payment of invoice {first.number} " in str(m["Subject"])]
    assert notices and not [r for r in _intents(shop) if r.param("metadata[invoice_id]") == first.invoice_id]
    _autopay(shop, _at(first.due_date))
    debit = next(r for r in _intents(shop) if r.param("metadata[invoice_id]") == first.invoice_id)
    assert debit.param("allowed_payment_method_types[0]") == "us_bank_account" and debit.param("mandate")
    page.goto(account_link(shop, data))
    assert page.locator(f"tr:has(a:text-is('{first.number}')) .badge-pending").count() == 1

    # The bank returns the debit: the customer is emailed, with the next try.
    intent_id = next(i for i, intent in standin.intents.items()
                     if intent["metadata"].get("attempt_id") == debit.param("metadata[attempt_id]"))
    send_event(shop, *standin.intent_settled(intent_id, failure="insufficient_funds"))
    before = len(smtp.messages)
    _autopay(shop, _at(first.due_date, 12))
    failed = [m for m in smtp.messages[before:] if "did not go through" in str(m["Subject"])]
    assert failed and "insufficient funds" in failed[0].get_body(("plain",)).get_content()

    # Remove the card and the bank account's use: autopay stops, nothing more is debited.
    page.goto(account_link(shop, data))
    page.get_by_role("button", name="Remove STRIPE TEST BANK ending in 6789").click()
    assert page.get_by_role("heading", name="Payment method removed").is_visible()
    tried = len(_intents(shop))
    _autopay(shop, _at(last.due_date + timedelta(days=10)))
    assert len(_intents(shop)) == tried
    page.goto(account_link(shop, data))
    assert "6789" not in page.locator("#methods").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "methods-desktop.png"), full_page=True)


def test_card_autopay_pays_an_invoice_on_its_due_date(shop, page):
    data = usd_customer(shop)
    page.goto(account_link(shop, data))
    if "ending in 4242" not in page.locator("#methods").inner_text():
        _save(shop, page, data, "Card", "4242424242424242")
        page.goto(account_link(shop, data))
    page.get_by_label("Pay with").select_option(label=next(
        o for o in page.locator("#ap-method option").all_inner_texts() if "4242" in o))
    page.get_by_label("Each invoice on its due date").check()
    page.get_by_role("button", name="Turn on automatic payment").click()
    last = max(data.invoices, key=lambda i: i.due_date)
    _autopay(shop, _at(last.due_date - timedelta(days=3)))
    _autopay(shop, _at(last.due_date))
    debit = next(r for r in _intents(shop) if r.param("metadata[invoice_id]") == last.invoice_id)
    assert debit.param("amount") == str(last.balance)
    page.goto(account_link(shop, data))
    assert page.locator(f"tr:has(a:text-is('{last.number}')) .badge-paid").count() == 1


def test_the_methods_section_is_accessible_and_fits_a_phone(shop, browser):
    from axe_playwright_python.sync_playwright import Axe

    data = usd_customer(shop)
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = context.new_page()
            page.goto(account_link(shop, data))
            result = Axe().run(page, context="#methods")
            assert result.violations_count == 0, result.generate_report()
            widest = page.evaluate("Math.max(...[...document.querySelectorAll('#methods, #methods *')]"
                                   ".map(e => e.getBoundingClientRect().right))")
            assert widest <= width, f"{label}: something in the section reaches {widest}px"
            page.screenshot(path=str(ARTIFACTS / f"methods-{label}.png"), full_page=True)
        finally:
            context.close()
