"""Each shipped language in a real browser (Chromium + Playwright): the account, invoice and statement pages and
the expired-link page of a customer in each locale pass axe-core with `lang` set to the language the text is in,
and the pay form's running total reads an amount typed the customer's way ("1,50" in German).

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), as the other browser tests.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portal.build.pipeline import build
from portal.core.i18n import translations_for
from portal.core.signing import Signer
from portal.export.sample import write_sample
from portal.store.database import Store
from tests.conftest import AS_OF, make_settings
from tests.i18n_helpers import LANGUAGE_OF, LOCALES, english_found, localise_export, read_html
from tests.livesite import ARTIFACTS, chromium, require_browser
from tests.ports import free_port
from tests.webhook_helpers import RELAXED, old_link_token
from webhook import create_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The sample export with one customer per shipped locale, built and served with the webhook (payments on,
    so the pay form is live; nothing here reaches Stripe)."""
    require_browser()
    folder: Path = tmp_path_factory.mktemp("languages")
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    settings = make_settings(f"sqlite:///{folder / 'portal.db'}", site_url=address, webhook_url=address,
                             mail_url=f"outbox:{folder / 'outbox'}", build_dir=str(folder / "site"),
                             target=str(folder / "site"), private_target=str(folder / "private"),
                             stripe_secret_key="sk_test_unused", stripe_api_base="http://127.0.0.1:9")
    export = write_sample(folder / "export", customers=6, invoices=20, seed=3, as_of=AS_OF)
    localise_export(export)
    build(export, folder / "site", settings, workers=1)
    app = create_app(settings, site_dir=folder / "site", config=RELAXED)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store = Store(settings.database_url)
    try:
        with chromium() as browser:
            yield {"address": address, "settings": settings, "store": store, "browser": browser}
    finally:
        server.shutdown()
        thread.join(5)
        runner = app.extensions.get("jobs")
        if runner is not None:
            runner.shutdown()
        store.close()
        app.extensions["portal"].store.close()


def _urls(site, customer_id: str) -> dict[str, str]:
    data = next(d for d in site["store"].customer_data() if d.customer.customer_id == customer_id)
    signer, contact = Signer(site["settings"]), data.contacts[0].contact_id
    invoice = data.invoices[0].invoice_id
    expired = old_link_token(site["settings"], customer_id, contact, "", 1,
                             age_days=site["settings"].link_ttl_days + 1)
    link = f"{site['address']}/l/"
    return {"account": link + signer.link_token(customer_id, contact, "", 1),
            "invoice": link + signer.link_token(customer_id, contact, invoice, 1),
            "statement": link + signer.link_token(customer_id, contact, "", 1), "expired": link + expired}


@pytest.mark.parametrize("customer_id", sorted(LOCALES))
def test_every_page_in_every_language_passes_axe_with_a_matching_lang(site, customer_id):
    from axe_playwright_python.sync_playwright import Axe

    language = LANGUAGE_OF[customer_id]
    context = site["browser"].new_context(viewport={"width": 1280, "height": 900})
    ARTIFACTS.mkdir(exist_ok=True)
    reports = []
    try:
        page = context.new_page()
        for name, url in _urls(site, customer_id).items():
            page.goto(url)
            if name == "statement":
                page.goto(page.url.replace("/index.html", "/statement.html"))
            assert page.evaluate("document.documentElement.lang") == language, name
            lang, text = read_html(page.content())
            if language != "en" and name != "expired":  # supplied document titles are the export's own words
                titles = [a.inner_text() for a in page.locator("ul.docs a").all()]
                for title in titles:
                    text = text.replace(title, "")
            if language != "en":
                assert english_found(text, language) == [], f"{language} {name}"
            page.screenshot(path=str(ARTIFACTS / f"lang-{language}-{name}.png"), full_page=True)
            result = Axe().run(page)
            reports.append((name, result))
    finally:
        context.close()
    for name, result in reports:
        assert result.violations_count == 0, f"{language} {name}: {result.generate_report()}"


def test_the_running_total_reads_an_amount_typed_the_german_way(site):
    context = site["browser"].new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(_urls(site, "C00002")["invoice"])
        field = page.locator("input[name^='amount-']").first
        field.fill("1,50")
        total = page.locator("#pay-total")
        total.wait_for()
        page.wait_for_function("document.getElementById('pay-total').textContent.includes('1,50')")
        assert "1,50" in total.inner_text() and "€" in total.inner_text()
        # The messages the script shows come from the page, in German.
        page.locator("input[name=invoice]").first.uncheck()
        page.wait_for_function("document.getElementById('pay-total').textContent.length > 0")
        assert total.inner_text() == translations_for("de").gettext("choose at least one invoice")
    finally:
        context.close()
