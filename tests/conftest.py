"""Shared fixtures: settings, a store on SQLite AND on a real throwaway PostgreSQL, sample exports.

PostgreSQL tests skip when the server binaries are missing, unless PORTAL_REQUIRE_POSTGRES=1 (set by
.ci/run), which turns the skip into a failure: in CI they must run. There, PORTAL_FAIL_ON_SKIP=1 turns any
other skip into a failure too (tests/noskip.py).
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import portal.balances.stored  # noqa: F401 - the derived tables follow every change (portal/store/derived.py),
import portal.staff.receiptlines  # noqa: F401 - as in the command line and the webhook
from portal.core.config import Settings, load_settings
from portal.export.sample import write_sample
from portal.store.database import Store
from tests.noskip import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - hooks
from tests.pgserver import PostgresServer
from tests.required import running

pytest_plugins = ["tests.payfixtures"]

AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
TEST_SECRET = "test-secret-key-0123456789abcdef"
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    yield from running(lambda: PostgresServer().start(), "PostgreSQL", "PORTAL_REQUIRE_POSTGRES")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path: Path) -> str:
    """Each test gets an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.db'}"
    server = request.getfixturevalue("postgres")
    return server.create_database(f"t{os.getpid()}_{next(_databases)}")


def make_settings(db_url: str, **overrides) -> Settings:
    return load_settings(env={}, config_file=None, database_url=db_url, secret_key=TEST_SECRET, **overrides)


@pytest.fixture
def settings(db_url: str, tmp_path: Path, monkeypatch) -> Settings:
    monkeypatch.chdir(tmp_path)  # portal.toml lookups and relative outputs stay inside the test folder
    return make_settings(db_url)


@pytest.fixture
def store(settings: Settings):
    store = Store(settings.database_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "export", customers=6, invoices=20, seed=3, as_of=AS_OF)
