"""AWS Lambda entry point of the webhook (handler `infra/lambda_handler.handler`), through apig-wsgi.

Everything expensive happens once per execution environment, at import (the cold start): the secrets are
read from Secrets Manager, the Flask app is made (settings, store pool, templates), and warm invocations
only translate the event. apig-wsgi with `binary_support=True` hands Flask the request body byte for byte
(base64-decoded when API Gateway or the Function URL encoded it), so Stripe's signature over the raw body
verifies. It understands API Gateway REST (v1) and HTTP API (v2) events and Function URL events (v2 format).

Secrets never sit in the template or the function's configuration: `PORTAL_SECRETS_ARN` names a Secrets
Manager secret holding a JSON object of environment variables (infra/secrets.py). `ORIGIN_VERIFY` in it is the
value CloudFront sends as the X-Origin-Verify header: requests that do not carry it (someone calling the public
Function URL directly) are refused with 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from apig_wsgi import make_lambda_handler
from flask import Flask

# The secret loader is shared with the refresh worker (infra/worker_handler.py), which must not build this app.
from infra.secrets import load_secrets

ORIGIN_HEADER = "x-origin-verify"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value or ""
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == name and values:
            return values[0] or ""
    return ""


def make_handler(app: Flask, origin_secret: str = "") -> Handler:
    """The Lambda handler for `app`; with `origin_secret`, requests without that X-Origin-Verify are refused."""
    wsgi = make_lambda_handler(app, binary_support=True)
    expected = origin_secret.encode()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if expected and not hmac.compare_digest(_header(event, ORIGIN_HEADER).encode(), expected):
            return {"statusCode": 403, "headers": {"Content-Type": "text/plain; charset=utf-8"},
                    "body": "forbidden\n", "isBase64Encoded": False}
        return wsgi(event, context)

    return handler


def _cold_start() -> Handler:
    origin = load_secrets()
    from webhook import create_app  # after the secrets are in the environment: create_app reads settings

    return make_handler(create_app(), origin)


handler = _cold_start()
