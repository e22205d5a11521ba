"""The Lambda entry point: API Gateway v1, v2 and Function URL events reach the webhook with the body intact.

Stripe signs the raw body, so these events carry a really signed payload, plain and base64-encoded, and the
signature must verify through apig-wsgi exactly as it does under gunicorn.
"""

from __future__ import annotations

import base64
import importlib
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import stripe
from sqlalchemy import select

from portal.store import payments as paystore
from portal.store.database import Store
from tests.conftest import TEST_SECRET

WEBHOOK_SECRET = "whsec_lambda_test_secret"
ORIGIN = "origin-verify-test-value"


@pytest.fixture
def lambda_module(tmp_path: Path, monkeypatch) -> ModuleType:
    """infra.lambda_handler imported fresh (its cold start) with the settings in the environment."""
    monkeypatch.chdir(tmp_path)  # no portal.toml from elsewhere
    url = f"sqlite:///{tmp_path / 'portal.db'}"
    store = Store(url)
    store.migrate()  # as `portal db upgrade` does before a deployment: create_app never migrates
    store.close()
    for name, value in {"PORTAL_DATABASE_URL": url, "PORTAL_SECRET_KEY": TEST_SECRET,
                        "STRIPE_SECRET_KEY": "sk_test_lambda", "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                        "PORTAL_TARGET": str(tmp_path / "site"), "PORTAL_BUILD_DIR": str(tmp_path / "build"),
                        "PORTAL_MAIL_URL": f"outbox:{tmp_path / 'outbox'}",
                        "PORTAL_STRIPE_API_BASE": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PORTAL_SECRETS_ARN", raising=False)
    monkeypatch.setenv("ORIGIN_VERIFY", ORIGIN)
    monkeypatch.delitem(sys.modules, "infra.lambda_handler", raising=False)
    module = importlib.import_module("infra.lambda_handler")
    yield module
    sys.modules.pop("infra.lambda_handler", None)


def signed(event_id: str) -> tuple[bytes, str]:
    # Non-ASCII and odd spacing on purpose: a re-serialised or re-encoded body would not verify.
    body = json.dumps({"id": event_id, "object": "event", "type": "customer.created", "created": int(time.time()),
                       "livemode": False, "api_version": stripe.api_version,
                       "data": {"object": {"id": "cus_1", "name": "Müller  &  Søn"}}}, ensure_ascii=False,
                      indent=1).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET,
                                                               timestamp=int(time.time()))
    return body, header


def _body(body: bytes, b64: bool) -> tuple[str, bool]:
    return (base64.b64encode(body).decode(), True) if b64 else (body.decode(), False)


def v1_event(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             b64: bool = False) -> dict[str, Any]:
    text, encoded = _body(body, b64)
    headers = {"Host": "abc.execute-api.eu-west-1.amazonaws.com", "X-Origin-Verify": ORIGIN, **(headers or {})}
    return {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": {"proxy": path.lstrip("/")},
            "requestContext": {"stage": "prod", "httpMethod": method, "path": path,
                               "identity": {"sourceIp": "203.0.113.9"}},
            "body": text or None, "isBase64Encoded": encoded}


def v2_event(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             b64: bool = False, function_url: bool = False) -> dict[str, Any]:
    """HTTP API (v2) event; `function_url`: the Function URL flavour of the same format."""
    text, encoded = _body(body, b64)
    host = "xyz.lambda-url.eu-west-1.on.aws" if function_url else "abc.execute-api.eu-west-1.amazonaws.com"
    headers = {"host": host, "x-origin-verify": ORIGIN, **{k.lower(): v for k, v in (headers or {}).items()}}
    context: dict[str, Any] = {"accountId": "anonymous" if function_url else "123456789012", "apiId": "xyz",
                               "domainName": host, "requestId": "r1", "stage": "$default", "time": "",
                               "timeEpoch": 0, "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                                        "sourceIp": "203.0.113.9", "userAgent": "Stripe/1.0"}}
    event: dict[str, Any] = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
                             "headers": headers, "requestContext": context, "isBase64Encoded": encoded}
    if text:
        event["body"] = text
    return event


def make_event(kind: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
               b64: bool = False) -> dict[str, Any]:
    if kind == "v1":
        return v1_event(method, path, body, headers, b64)
    return v2_event(method, path, body, headers, b64, function_url=kind == "url")


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body", "")
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def event_recorded(event_id: str) -> bool:
    import os

    store = Store(os.environ["PORTAL_DATABASE_URL"])
    try:
        with store.begin() as conn:
            return conn.execute(select(paystore.stripe_events.c.event_id)
                                .where(paystore.stripe_events.c.event_id == event_id)).first() is not None
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
@pytest.mark.parametrize("b64", [False, True], ids=["plain", "base64"])
def test_a_stripe_signed_event_verifies_through_the_handler(lambda_module, kind: str, b64: bool):
    event_id = f"evt_lambda_{kind}_{int(b64)}"
    body, signature = signed(event_id)
    headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature}
    response = lambda_module.handler(make_event(kind, "POST", "/stripe/events", body, headers, b64), None)
    assert response["statusCode"] == 200, response_body(response)
    assert json.loads(response_body(response)) == {"received": True}
    assert event_recorded(event_id)


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_a_tampered_body_is_rejected(lambda_module, kind: str):
    body, signature = signed(f"evt_tampered_{kind}")
    tampered = body.replace(b"customer.created", b"customer.deleted")
    headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
    response = lambda_module.handler(make_event(kind, "POST", "/stripe/events", tampered, headers, b64=True), None)
    assert response["statusCode"] == 400
    assert not event_recorded(f"evt_tampered_{kind}")


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_health_and_a_bad_link_answer_through_the_handler(lambda_module, kind: str):
    response = lambda_module.handler(make_event(kind, "GET", "/healthz"), None)
    assert response["statusCode"] == 200 and response_body(response) == b"ok\n"
    # A forged link: the webhook's own 404-style page, with the security headers, nothing leaked.
    response = lambda_module.handler(make_event(kind, "GET", "/l/not-a-real-token"), None)
    assert response["statusCode"] == 404
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    headers.update({k.lower(): v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()})
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("kind", ["v1", "v2", "url"])
def test_requests_that_bypass_cloudfront_are_refused(lambda_module, kind: str):
    body, signature = signed(f"evt_direct_{kind}")
    event = make_event(kind, "POST", "/stripe/events", body, {"Stripe-Signature": signature})
    for store in ("headers", "multiValueHeaders"):
        for key in [k for k in event.get(store) or {} if k.lower() == "x-origin-verify"]:
            del event[store][key]
    assert lambda_module.handler(event, None)["statusCode"] == 403
    assert not event_recorded(f"evt_direct_{kind}")
    event = make_event(kind, "GET", "/healthz", headers={"X-Origin-Verify": "wrong"})
    if kind == "v1":
        event["multiValueHeaders"]["X-Origin-Verify"] = ["wrong"]
    assert lambda_module.handler(event, None)["statusCode"] == 403


def test_secrets_come_from_secrets_manager_at_cold_start():
    from infra.secrets import apply_secret, load_secrets  # shared by the webhook's and the worker's cold starts

    environ = {"PORTAL_SECRETS_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:portal"}
    secret = json.dumps({"PORTAL_SECRET_KEY": "k" * 32, "STRIPE_WEBHOOK_SECRET": "whsec_x", "ORIGIN_VERIFY": "o1"})
    asked = []
    origin = load_secrets(environ, fetch=lambda arn: asked.append(arn) or secret)
    assert asked == [environ["PORTAL_SECRETS_ARN"]] and origin == "o1"
    assert environ["PORTAL_SECRET_KEY"] == "k" * 32 and "ORIGIN_VERIFY" not in environ
    for bad in ('{"PATH": "/tmp"}', '{"PORTAL_SECRET_KEY": 1}', '["x"]'):
        with pytest.raises(ValueError):
            apply_secret(bad, {})
