"""Fixtures of the payment tests (registered for every test module by tests/conftest.py): a Stripe stand-in,
settings that point at it, the sample built with payments on, and the webhook over it."""

from __future__ import annotations

import pytest

from portal.build.pipeline import build
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import make_app

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def standin():
    server = StripeStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def pay_settings(settings, tmp_path, standin):
    return settings.replace(stripe_secret_key="sk_test_standin", stripe_webhook_secret=WEBHOOK_SECRET,
                            stripe_api_base=standin.base, build_dir=str(tmp_path / "build"),
                            target=str(tmp_path / "published"), mail_url=f"outbox:{tmp_path / 'outbox'}")


@pytest.fixture
def built(pay_settings, store, export_dir):
    build(export_dir, pay_settings.build_dir, pay_settings, store, workers=1)
    return pay_settings


@pytest.fixture
def app(built, tmp_path):
    with make_app(built, tmp_path) as app:
        yield app
        app.extensions["jobs"].wait()


@pytest.fixture
def client(app):
    return app.test_client()
