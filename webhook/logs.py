"""Structured logs: one JSON object per line, never a token or an email address in clear.

Tokens are capabilities (whoever holds one sees the customer's pages), so logs carry `token_ref(token)`,
a short hash that lets an operator match log lines with each other without being able to replay them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("webhook")
security_log = logging.getLogger("webhook.security")

# Capabilities in paths: the token routes, the unsubscribe route and the customer page folders (c/<key>/). The
# character class is wider than the tokens' alphabet so that a respelled or percent-encoded token is hidden too.
_TOKEN_PATH = re.compile(r"/(l|r|d|files|u|c)/([^\s\"'/?#]+)")
# Any query string after a path (the payment page's ?ref=, a page opened with ?utm=...): whatever it holds.
_QUERY = re.compile(r"(?<=[^\s\"'?])\?[^\s\"'#]+")
_EMAIL = re.compile(r"[^\s@<>\"']+@[^\s@<>\"']+\.[A-Za-z]{2,}")


def token_ref(token: str) -> str:
    """A short, stable, non-reversible name for a token (12 hex characters of SHA-256)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def redact(text: str) -> str:
    """Replace capabilities in URL paths (tokens, page keys) and query strings by their reference, and mask
    email addresses. Applied to every line we log and to werkzeug's request log (`portal serve`)."""
    if "/" in text or "?" in text:
        text = _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/~{token_ref(m.group(2))}", text)
        text = _QUERY.sub(lambda m: f"?~{token_ref(m.group(0)[1:])}", text)
    return _EMAIL.sub("<email>", text)


def event(name: str, level: int = logging.INFO, logger: logging.Logger = log, **fields: Any) -> None:
    """Log one structured event: `name` plus key/value fields (which must already be free of secrets)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """`{"time": ..., "level": ..., "logger": ..., "event": ..., **fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str, ensure_ascii=False)


class RedactFilter(logging.Filter):
    """For loggers we do not write ourselves (werkzeug's request log prints whole paths, tokens included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (test runners and servers swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_configured = False


def configure_logging(level: str = "INFO") -> None:
    """Send the webhook's logs to stderr as JSON lines (once per process) and redact werkzeug's log.

    gunicorn and Lambda both collect stderr; nothing here depends on how the root logger is set up, so the
    format is the same under `portal serve`, gunicorn and the tests.
    """
    global _configured
    log.setLevel(level.upper())
    if _configured:
        return
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.propagate = False
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactFilter) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(RedactFilter())
    _configured = True
