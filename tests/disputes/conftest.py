"""Fixtures of the disputes tests: settings with a separate build folder, target and outbox, a built site, and the
webhook serving the published folder (as `portal serve` does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.build.pipeline import build
from portal.publish.publisher import publish
from tests.webhook_helpers import make_app


@pytest.fixture
def dsettings(settings, tmp_path):
    return settings.replace(build_dir=str(tmp_path / "build"), target=str(tmp_path / "published"),
                            mail_url=f"outbox:{tmp_path / 'outbox'}", ar_inbox="ar-team@example.com")


@pytest.fixture
def built(dsettings, store, export_dir):
    build(export_dir, dsettings.build_dir, dsettings, store, workers=1)
    publish(dsettings, dsettings.build_dir)  # as a deployment's nightly job does: the target holds the whole site
    return dsettings


@pytest.fixture
def app(built, tmp_path):
    with make_app(built, tmp_path, site_dir=Path(built.target)) as app:
        yield app
        app.extensions["jobs"].wait()


@pytest.fixture
def client(app):
    return app.test_client()
