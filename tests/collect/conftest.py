"""Fixtures the collector workbench's tests share: the mail ledger, imported as of the tests' TODAY
(tests/collect_helpers.py)."""

from __future__ import annotations

import pytest

from tests.collect_helpers import TODAY
from tests.smtpserver import mail_ledger


@pytest.fixture
def ledger(store, tmp_path):
    ledger = mail_ledger(TODAY, tmp_path)
    store.import_snapshot(ledger)
    return ledger
