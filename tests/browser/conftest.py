"""Fixtures every browser test module shares: one Chromium per module, a fresh desktop-sized page per test (a new
context: no cookies or storage carried from one test to the next), and the payment tests' shop (tests/browser/shop.py).
"""

from __future__ import annotations

import pytest

from tests.browser.shop import running_shop
from tests.livesite import WIDTHS, chromium, require_browser


@pytest.fixture(scope="module")
def browser():
    require_browser()
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def shop(request, tmp_path_factory):
    """The sample site with payments on, served with the webhook, Stripe stood in (tests/browser/shop.py). A module
    sets `SHOP = {...}`: the site's other settings, and `smtp=True` for a real SMTP server (`shop["smtp"]`)."""
    options = dict(getattr(request.module, "SHOP", {}))
    name = request.module.__name__.rsplit(".", 1)[-1]
    with running_shop(tmp_path_factory.mktemp(f"shop-{name}"), **options) as shop:
        yield shop
