"""Fixtures of the customer-facing webhook tests: the sample export imported into the test's store, a signer."""

from __future__ import annotations

import pytest

from portal.core.signing import Signer
from tests.webhook_helpers import import_sample


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


@pytest.fixture
def signer(settings):
    return Signer(settings)
