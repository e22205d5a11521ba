"""Fixtures of the publish tests: a real S3 server (SeaweedFS, one per session), boto3 pointed at it, a fresh
bucket per test, and a built site. The S3 tests skip when the `weed` binary is missing, unless
PORTAL_REQUIRE_S3=1 (CI), which turns the skip into a failure."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from portal.build.pipeline import build
from tests.conftest import make_settings
from tests.s3server import SeaweedS3, point_boto3_at, started_or_skipped

_buckets = itertools.count(1)

@pytest.fixture(scope="session")
def s3():
    yield from started_or_skipped()


@pytest.fixture
def aws_env(s3: SeaweedS3, monkeypatch) -> SeaweedS3:
    point_boto3_at(s3, monkeypatch)
    return s3


@pytest.fixture
def bucket(aws_env: SeaweedS3) -> str:
    return aws_env.create_bucket(f"pub-{os.getpid()}-{next(_buckets)}")


@pytest.fixture
def site(export_dir: Path, tmp_path: Path, monkeypatch):
    """A built site in tmp/build, and the settings that built it (target filled in by each test)."""
    monkeypatch.chdir(tmp_path)
    settings = make_settings(f"sqlite:///{tmp_path / 'portal.db'}")
    out = tmp_path / "build"
    build(export_dir, out, settings)
    return settings, out
