"""Fixtures every browser test module shares: one Chromium per module, and a fresh desktop-sized page per test
(a new context: no cookies or storage carried from one test to the next)."""

from __future__ import annotations

import pytest

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
