"""The CLI tests' `run`: `portal ARGS...` in-process (click's runner), in a fresh folder, on each database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from portal.cli.main import cli
from tests.conftest import TEST_SECRET


@pytest.fixture
def run(tmp_path, monkeypatch, db_url):
    monkeypatch.chdir(tmp_path)
    env = {"PORTAL_DATABASE_URL": db_url, "PORTAL_SECRET_KEY": TEST_SECRET}

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), obj={}, env=env, catch_exceptions=False)
    return invoke
