"""Secrets for the Lambda functions (the webhook, infra/lambda_handler.py, and the refresh worker,
infra/worker_handler.py), read once per execution environment.

Secrets never sit in the template or the function's configuration: `PORTAL_SECRETS_ARN` names a Secrets Manager
secret holding a JSON object of environment variables (PORTAL_SECRET_KEY, STRIPE_WEBHOOK_SECRET, ...), copied
into the environment before the settings are read. This module imports neither Flask nor the webhook, so the
worker's cold start does not build the webhook's app.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, MutableMapping

SECRETS_ARN_VAR = "PORTAL_SECRETS_ARN"
ORIGIN_SECRET_KEY = "ORIGIN_VERIFY"
# The only variables a secret may set: it must not be able to change PATH, AWS_* or the Python runtime.
ALLOWED_PREFIXES = ("PORTAL_", "STRIPE_", "WEBHOOK_")


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
