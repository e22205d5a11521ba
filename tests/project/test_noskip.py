"""tests/noskip.py: where no test may skip (CI), every kind of skip fails the run; elsewhere skips stay skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SKIPPING = '''
import pytest

def test_runs():
    pass

def test_skips_itself():
    pytest.skip("no widget here")

@pytest.mark.skipif(True, reason="marked to skip")
def test_marked():
    pass

@pytest.fixture
def server():
    pytest.skip("the server binary is missing")

def test_needs_a_server(server):
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False
'''

SKIPPED_MODULE = '''
import pytest

pytest.importorskip("no_such_module_anywhere")

def test_never_collected():
    pass
'''


def run(test_file: Path, fail_on_skip: bool) -> tuple[int, str]:
    """Run pytest on one file with the plugin loaded as tests/conftest.py loads it; (exit status, summary line
    and output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PORTAL_FAIL_ON_SKIP", None)
    if fail_on_skip:
        env["PORTAL_FAIL_ON_SKIP"] = "1"
    folder = test_file.parent  # the rootdir: not this repository, whose settings would apply
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.noskip", "-p", "no:cacheprovider",
                           "--rootdir", str(folder), str(test_file)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, done.stdout


def test_every_kind_of_skip_fails_where_no_test_may_skip(tmp_path):
    tests = tmp_path / "test_skipping.py"
    tests.write_text(SKIPPING)
    status, output = run(tests, fail_on_skip=True)
    summary = output.strip().splitlines()[-1]
    assert status == 1, output
    # A skip in the call fails the test; one while setting up (skipif, a fixture) is an error: both fail the run.
    assert "1 failed" in summary and "2 errors" in summary and "1 passed" in summary and "1 xfailed" in summary, \
        output
    assert "skipped" not in summary, output
    for reason in ("no widget here", "marked to skip", "the server binary is missing"):
        assert f"skipped where no test may skip (PORTAL_FAIL_ON_SKIP=1): Skipped: {reason}" in output, reason


def test_a_skipped_module_fails_where_no_test_may_skip(tmp_path):
    module = tmp_path / "test_skipped_module.py"
    module.write_text(SKIPPED_MODULE)
    status, output = run(module, fail_on_skip=True)
    assert status != 0, output
    assert "skipped where no test may skip (PORTAL_FAIL_ON_SKIP=1): Skipped: could not import" in output
    assert "1 error" in output.strip().splitlines()[-1], output


def test_skips_stay_skips_elsewhere(tmp_path):
    tests = tmp_path / "test_skipping.py"
    tests.write_text(SKIPPING)
    status, output = run(tests, fail_on_skip=False)
    assert status == 0, output
    summary = output.strip().splitlines()[-1]
    assert "1 passed" in summary and "3 skipped" in summary and "1 xfailed" in summary, output
    module = tmp_path / "test_skipped_module.py"
    module.write_text(SKIPPED_MODULE)
    status, output = run(module, fail_on_skip=False)
    assert status == 5 and "1 skipped" in output.strip().splitlines()[-1], output  # 5: nothing ran
