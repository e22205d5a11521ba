"""Fixtures of the refresh queue's tests: the S3 server of the publish tests, and the webhook recording jobs
without running them (job_runner = "external"), so each test decides when a worker runs them; and the settings
as the PORTAL_* variables a worker process or the worker Lambda is configured with."""

from __future__ import annotations

from dataclasses import fields

import pytest

from portal.core.config import Settings
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


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the PORTAL_* variables a deployed process (`portal worker`, the worker Lambda) would be given:
    every setting that is not at its default."""
    env = {}
    for item in fields(Settings):
        value = getattr(settings, item.name)
        if item.name != "config_file" and value != item.default:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            env[f"PORTAL_{item.name.upper()}"] = text.lower() if isinstance(value, bool) else text
    return env
