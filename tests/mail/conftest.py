"""Fixtures the mail tests share: a real SMTP server (aiosmtpd, tests/smtpserver.py) for each test."""

from __future__ import annotations

import pytest

from tests.smtpserver import running_smtp


@pytest.fixture
def smtp():
    yield from running_smtp()
