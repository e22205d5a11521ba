"""Tests that need a real server or browser: skipped where it is missing, failed where it is required.

CI sets PORTAL_REQUIRE_POSTGRES=1, PORTAL_REQUIRE_S3=1 and PORTAL_REQUIRE_BROWSER=1 (.ci/run), so there a
missing part fails the run instead of quietly skipping the tests that need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest


def unavailable(what: str, reason: object, required_by: str) -> NoReturn:
    """Skip the test (`what` is missing because of `reason`), or fail it when `required_by` is set to 1."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{what} is required here ({required_by}=1) but is not available: {reason}")
    pytest.skip(f"{what} not available: {reason}")


def running(start: Callable[[], Any], what: str, required_by: str) -> Iterator[Any]:
    """For a fixture to `yield from`: the server `start()` returns, stopped afterwards; `unavailable` when it
    cannot start."""
    try:
        server = start()
    except Exception as exc:  # noqa: BLE001 - whatever stops it from starting, the test cannot run here
        unavailable(what, exc, required_by)
    yield server
    server.stop()
