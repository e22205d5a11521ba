"""Where no test may skip (CI: PORTAL_FAIL_ON_SKIP=1, set by .ci/run), a skip is reported as a failure.

A skipped test proves nothing, and on a machine that lacks a part (a server binary, a browser) whole groups of
tests skip quietly: the run looks green while testing less. The servers' own fixtures already fail instead of
skipping where CI requires them (tests/required.py); this catches every other skip too, whoever raises it
(`pytest.skip`, `skipif`, `importorskip`, a module-level skip), at the one place pytest reports it. Expected
failures (`xfail`) are not skips and are left alone.

Registered by tests/conftest.py; `python -m pytest -p tests.noskip` loads it anywhere.
"""

from __future__ import annotations

import os

import pytest

VARIABLE = "PORTAL_FAIL_ON_SKIP"


def _required() -> bool:
    return os.environ.get(VARIABLE) == "1"


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped where no test may skip ({VARIABLE}=1): {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and _required():
        _as_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    if report.skipped and _required():
        _as_failure(report)
    return report
