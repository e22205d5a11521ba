"""Security headers on every response, and rate limits on the public routes.

The headers are added by a small WSGI middleware around the Flask app, to the header list of every response
just as it starts: error pages, redirects, beacons and files served in development all carry them.
Capability URLs (every address with a token) must never leak: no Referer, no caching by shared caches, no
framing. (An `after_request` hook did the same through werkzeug's Headers object, which re-validates each
header three times per response: about 12 us a request, against 3 us for a list extend here.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.exceptions import TooManyRequests

from portal.core.signing import is_canonical
from webhook.errors import TokenRejected
from webhook.formtoken import form_token
from webhook.logs import event, security_log, token_ref
from webhook.services import client_ip, services

# The webhook's own pages use one stylesheet and forms that post back here; in development the site's
# pages are served from the same origin and need their beacon script and its POST to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# A document served for a folder target: the browser's PDF and image viewers need to render it, nothing else.
# `sandbox` makes whatever a document holds an opaque origin with no scripts, forms, popups or plugins. Not for a
# PDF shown inline: Chrome and Safari refuse to start their PDF viewer in a sandboxed document (no sandbox token
# lets it), and their viewers run a PDF apart from the origin that served it anyway.
PDF_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; frame-ancestors 'none'"
FILE_CSP = f"{PDF_CSP}; sandbox"
HSTS = "max-age=63072000; includeSubDomains"


# Set on every response. Routes may choose their own value for the ones in OVERRIDABLE (files, assets).
FIXED = [("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
         ("Cross-Origin-Opener-Policy", "same-origin"), ("X-Robots-Tag", "noindex, nofollow, noarchive"),
         ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")]
# Anything answered for a token is personal: unless a route says otherwise, no cache may keep it.
OVERRIDABLE = [("Content-Security-Policy", CSP), ("Cache-Control", "no-store")]
_FIXED_NAMES = {name.lower() for name, _ in FIXED} | {"strict-transport-security"}
_OWN_NAMES = _FIXED_NAMES | {name.lower() for name, _ in OVERRIDABLE}
_ALL = FIXED + OVERRIDABLE
_HSTS = [("Strict-Transport-Security", HSTS)]
_SECURE_SCHEMES = {"https", "wss"}  # as werkzeug's Request.is_secure


def security_headers(headers: list[tuple[str, str]], scheme: str) -> list[tuple[str, str]]:
    """The response's headers with ours added: FIXED always (replacing any the route set), OVERRIDABLE
    unless the route chose its own value, HSTS only over https (on plain http browsers ignore it)."""
    present = {name.lower() for name, _ in headers}
    if present.isdisjoint(_OWN_NAMES):  # the common case: the route set none of ours
        headers = headers + _ALL
    else:
        headers = [(name, value) for name, value in headers if name.lower() not in _FIXED_NAMES]
        headers += FIXED
        headers += [(name, value) for name, value in OVERRIDABLE if name.lower() not in present]
    return headers + _HSTS if scheme in _SECURE_SCHEMES else headers


class SecurityHeaders:
    """WSGI middleware: every response that starts through it carries the security headers."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # Read when the response starts, after ProxyFix (inside or outside this) has set the scheme
            # from X-Forwarded-Proto.
            return start_response(status, security_headers(headers, environ.get("wsgi.url_scheme", "")),
                                  exc_info)

        return self.app(environ, start)


def init_app(app: Flask) -> None:
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]


def rate_limited(scope: str, token_arg: str | None = "token") -> Callable:
    """Limit a route per client IP (one budget across all public routes) and per token.

    Per token matters because one leaked or scanned link should not be replayed thousands of times, even
    from many addresses; per IP because random tokens cost us an HMAC check each. A token not in its
    canonical spelling (portal.core.signing.is_canonical) is refused here, after the per-IP count and without
    touching any token's budget: every genuine token has one spelling, so one budget. A form's token is read
    before its body is parsed (webhook/formtoken.py).
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            s = services()
            rules = [(f"ip:{client_ip()}", s.limits["ip"])]
            token = kwargs.get(token_arg) if token_arg else None
            if token is None and token_arg:
                token = form_token(token_arg)
            canonical = not token or is_canonical(token)
            if token and canonical:
                limit = s.limits["fresh"] if scope == "fresh" else s.limits["token"]
                rules.append((f"{scope}:{token_ref(token)}", limit))
            verdict = s.limiter.check(*rules)
            if not verdict.allowed:
                event("rate_limited", logger=security_log, route=scope, ip=client_ip(),
                      token=token_ref(token) if token else "", retry_after=verdict.retry_after)
                raise TooManyRequests(retry_after=verdict.retry_after)
            if not canonical:
                raise TokenRejected(scope, token or "", "token not in canonical form")
            return view(*args, **kwargs)

        return wrapper

    return decorate
