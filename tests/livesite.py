"""The sample site served live for browser tests: built for http://127.0.0.1:PORT and served with the webhook
by werkzeug in a thread, plus headless Chromium. Shared by every tests/browser/test_*.py module.

Skips without Chromium, unless PORTAL_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from portal.build.pipeline import build
from portal.core.signing import Signer
from portal.export.sample import write_sample
from portal.store.database import Store
from tests.conftest import AS_OF, make_settings
from tests.ports import free_port
from tests.required import unavailable
from tests.tools import find, need
from tests.webhook_helpers import RELAXED
from webhook import create_app

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WIDTHS = {"phone": 390, "desktop": 1280}


def require_browser() -> None:
    missing = None
    if find("chromium") is None:
        missing = "chromium is not installed (apt-get install -y chromium; make test installs it)"
    else:
        try:
            import axe_playwright_python  # noqa: F401
            import playwright  # noqa: F401
        except ImportError as exc:
            missing = f"playwright / axe-playwright-python missing: {exc}"
    if missing:
        unavailable("Chromium with Playwright and axe", missing, "PORTAL_REQUIRE_BROWSER")


@contextmanager
def served_sample_site(folder: Path, **overrides: Any) -> Iterator[dict[str, Any]]:
    """Build the sample export (3 customers, 8 invoices) into folder/site and serve it with the webhook.

    Yields settings, store, address, signer, app, folder and site; stops the server and every background
    worker the app started (re-render queues) on the way out."""
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    site = folder / "site"
    settings = make_settings(f"sqlite:///{folder / 'portal.db'}", site_url=address, webhook_url=address,
                             mail_url=f"outbox:{folder / 'outbox'}", build_dir=str(site), target=str(site),
                             **{"private_target": str(folder / "private"), **overrides})
    export = write_sample(folder / "export", customers=3, invoices=8, seed=3, as_of=AS_OF)
    build(export, site, settings, workers=1)
    app = create_app(settings, site_dir=site, config=RELAXED)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store = Store(settings.database_url)
    try:
        yield {"settings": settings, "store": store, "address": address, "signer": Signer(settings), "app": app,
               "folder": folder, "site": site}
    finally:
        server.shutdown()
        thread.join(5)
        for extension in app.extensions.values():
            worker = getattr(extension, "republisher", extension)
            if hasattr(worker, "shutdown"):
                worker.shutdown()
        store.close()
        app.extensions["portal"].store.close()


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(need("chromium")), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def axe_clean(page: Any, screenshot: str = "") -> None:
    """Fail on any axe violation on the page as it stands; keep a full-page screenshot named `screenshot` (for a
    person to look at, never compared) in test-artifacts/."""
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    assert result.violations_count == 0, result.generate_report()
    if screenshot:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{screenshot}.png"), full_page=True)
