"""Fixtures of the refresh queue's tests: the S3 server of the publish tests, and the webhook recording jobs
without running them (job_runner = "external"), so each test decides when a worker runs them."""

from __future__ import annotations

import pytest

from tests.publish.conftest import aws_env, bucket, s3  # noqa: F401 - the same real S3 server fixtures
from tests.webhook_helpers import make_app


@pytest.fixture
def external(built):
    return built.replace(job_runner="external")


@pytest.fixture
def quiet_app(external, tmp_path):
    """The webhook answering Stripe and customers; the jobs it records wait for a worker."""
    with make_app(external, tmp_path) as app:
        yield app
