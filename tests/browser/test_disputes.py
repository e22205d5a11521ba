"""The dispute form in a real browser (Chromium + Playwright): open an invoice from its emailed link, choose a
reason, type a message with HTML in it, attach a real PDF (`set_input_files`), send; the confirmation shows the
reference and the message escaped, the file is stored privately, and the invoice page then says "In dispute".
axe-core finds nothing on the form or on the confirmation page.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as tests/browser/test_receipts.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.staff.disputes_report import disputes
from tests.livesite import ARTIFACTS, WIDTHS, require_browser, served_sample_site

pytestmark = pytest.mark.browser

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def portal_site(tmp_path_factory):
    """The sample site served with the webhook on one loopback port (the folder is also the target)."""
    require_browser()
    with served_sample_site(tmp_path_factory.mktemp("browser-dispute")) as site:
        yield site


def _customer(portal_site):
    return next(d for d in portal_site["store"].customer_data() if len(d.invoices) >= 2 and d.contacts)


def _invoice_link(portal_site, data, invoice_id: str) -> str:
    token = portal_site["signer"].link_token(data.customer.customer_id, data.contacts[0].contact_id, invoice_id, 1)
    return f"{portal_site['address']}/l/{token}"


def test_dispute_an_invoice_with_a_real_file_upload(portal_site, browser, tmp_path):
    from axe_playwright_python.sync_playwright import Axe

    data = _customer(portal_site)
    inv = data.invoices[0]
    upload = tmp_path / "proof of delivery.pdf"
    upload.write_bytes(PDF)
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    try:
        page = context.new_page()
        page.goto(_invoice_link(portal_site, data, inv.invoice_id))
        form = page.locator("form.dispute-form")
        assert form.count() == 1 and form.get_attribute("enctype") == "multipart/form-data"
        page.get_by_label("Reason").select_option("quantity")
        page.get_by_label("What is wrong?").fill("Only 8 of 10 boxes <b>arrived</b>")
        page.get_by_label("Attachments", exact=False).set_input_files(str(upload))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dispute-form-desktop.png"), full_page=True)
        page.get_by_role("button", name="Send dispute").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", name="Dispute received").is_visible()
        [row] = [r for r in disputes(portal_site["store"]) if inv.invoice_id in r["invoice_ids"]]
        assert page.get_by_text(f"D-{row['dispute_id']}").first.is_visible()
        assert page.locator("blockquote.message").inner_text() == "Only 8 of 10 boxes <b>arrived</b>"
        assert (row["reason"], row["amount"]) == ("quantity", inv.balance)
        private = Path(portal_site["settings"].effective_private_target)
        stored = private / "disputes" / str(row["dispute_id"]) / "1-proof_of_delivery.pdf"
        assert stored.read_bytes() == PDF
        # Stored outside the published folder the dev server (or any static host) serves.
        assert not (portal_site["site"] / "disputes").exists()
        rel = stored.relative_to(private).as_posix()
        assert page.request.get(f"{portal_site['address']}/{rel}").status == 404
        result = Axe().run(page)
        assert result.violations_count == 0, result.generate_report()
        page.screenshot(path=str(ARTIFACTS / "dispute-confirmation-desktop.png"), full_page=True)

        portal_site["app"].extensions["jobs"].wait()
        page.goto(_invoice_link(portal_site, data, inv.invoice_id))
        assert page.locator(".badge-disputed").first.inner_text() == "In dispute"
    finally:
        context.close()


def test_the_dispute_form_has_no_accessibility_violations(portal_site, browser):
    from axe_playwright_python.sync_playwright import Axe

    data = _customer(portal_site)
    for label, width in WIDTHS.items():
        context = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = context.new_page()
            for link in (_invoice_link(portal_site, data, data.invoices[-1].invoice_id),
                         _invoice_link(portal_site, data, "")):
                page.goto(link)
                assert page.locator("form.dispute-form").count() == 1
                result = Axe().run(page, context="section[aria-labelledby=ask-h]")
                assert result.violations_count == 0, result.generate_report()
            page.screenshot(path=str(ARTIFACTS / f"dispute-form-{label}.png"), full_page=True)
        finally:
            context.close()

