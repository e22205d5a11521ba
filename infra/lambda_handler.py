"""AWS Lambda entry point of the webhook (handler `infra/lambda_handler.handler`), through apig-wsgi.

Everything expensive happens once per execution environment, at import (the cold start): the secrets are
read from Secrets Manager, the Flask app is made (settings, store pool, templates), and warm invocations
only translate the event. apig-wsgi with `binary_support=True` hands Flask the request body byte for byte
(base64-decoded when API Gateway or the Function URL encoded it), so Stripe's signature over the raw body
verifies. It understands API Gateway REST (v1) and HTTP API (v2) events and Function URL events (v2 format).

Secrets never sit in the template or the function's configuration: `PORTAL_SECRETS_ARN` names a Secrets
Manager secret holding a JSON object of environment variables (PORTAL_SECRET_KEY, STRIPE_WEBHOOK_SECRET,
...). `ORIGIN_VERIFY` in it is the value CloudFront sends as the X-Origin-Verify header: requests that do
not carry it (someone calling the public Function URL directly) are refused with 403.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, MutableMapping
from typing import Any

from apig_wsgi import make_lambda_handler
from flask import Flask

SECRETS_ARN_VAR = "PORTAL_SECRETS_ARN"
ORIGIN_HEADER = "x-origin-verify"
ORIGIN_SECRET_KEY = "ORIGIN_VERIFY"
# The only variables a secret may set: it must not be able to change PATH, AWS_* or the Python runtime.
ALLOWED_PREFIXES = ("PORTAL_", "STRIPE_", "WEBHOOK_")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def apply_secret(text: str, environ: MutableMapping[str, str]) -> str:
    """Copy the secret's variables (a JSON object of strings) into `environ`; return its ORIGIN_VERIFY value.

    Values from the secret win over the function's configuration (e.g. a PORTAL_DATABASE_URL with its
    password). Raises ValueError, naming the key but never the value, on anything else.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the secret must be a JSON object of environment variables")
    origin = ""
    for key, value in data.items():
        if not isinstance(value, str):
            raise ValueError(f"secret key {key!r}: the value must be a string")
        if key == ORIGIN_SECRET_KEY:
            origin = value
        elif key.startswith(ALLOWED_PREFIXES):
            environ[key] = value
        else:
            raise ValueError(f"secret key {key!r}: only {', '.join(ALLOWED_PREFIXES)}* variables and "
                             f"{ORIGIN_SECRET_KEY} may be set from the secret")
    return origin


def _fetch_secret(arn: str) -> str:
    import boto3  # only in Lambda: the tests and containers pass secrets as plain environment variables

    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


def load_secrets(environ: MutableMapping[str, str] | None = None,
                 fetch: Callable[[str], str] = _fetch_secret) -> str:
    """Read the secret named by PORTAL_SECRETS_ARN (if set) into the environment; return ORIGIN_VERIFY.

    Without PORTAL_SECRETS_ARN, ORIGIN_VERIFY may come from the environment itself (or be empty: no check).
    """
    environ = os.environ if environ is None else environ
    arn = environ.get(SECRETS_ARN_VAR, "")
    if not arn:
        return environ.get(ORIGIN_SECRET_KEY, "")
    return apply_secret(fetch(arn), environ)


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
