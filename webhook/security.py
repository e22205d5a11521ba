"""Security headers on every response, and rate limits on the public routes.

The headers are set in one `after_request` hook, so error pages, redirects, beacons and files served in
development all carry them. Capability URLs (every address with a token) must never leak: no Referer, no
caching by shared caches, no framing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import TooManyRequests

from .logs import event, security_log, token_ref
from .services import client_ip, services

# The webhook's own pages use one stylesheet and forms that post back here; in development the site's
# pages are served from the same origin and need their beacon script and its POST to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# A document served for a folder target: the browser's PDF and image viewers need to render it, nothing else.
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; frame-ancestors 'none'"
HSTS = "max-age=63072000; includeSubDomains"


# Set on every response. Routes may choose their own value for the ones in OVERRIDABLE (files, assets).
FIXED = [("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
         ("Cross-Origin-Opener-Policy", "same-origin"), ("X-Robots-Tag", "noindex, nofollow, noarchive"),
         ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")]
# Anything answered for a token is personal: unless a route says otherwise, no cache may keep it.
OVERRIDABLE = [("Content-Security-Policy", CSP), ("Cache-Control", "no-store")]
_FIXED_NAMES = {name.lower() for name, _ in FIXED}


def set_security_headers(response: Response) -> Response:
    headers = response.headers
    # One pass over what the route set, then one extend: this runs on every request, and werkzeug's
    # per-header `set` rescans the whole list each time.
    present = {name.lower() for name, _ in headers}
    if present & _FIXED_NAMES:
        for name, _ in FIXED:
            headers.remove(name)
    headers.extend(FIXED)
    headers.extend([(name, value) for name, value in OVERRIDABLE if name.lower() not in present])
    # Only over https: an HSTS header on plain http is ignored by browsers and misleads readers.
    if request.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    return response


def init_app(app: Flask) -> None:
    app.after_request(set_security_headers)


def rate_limited(scope: str, token_arg: str | None = "token") -> Callable:
    """Limit a route per client IP (one budget across all public routes) and per token.

    Per token matters because one leaked or scanned link should not be replayed thousands of times, even
    from many addresses; per IP because random tokens cost us an HMAC check each.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            s = services()
            rules = [(f"ip:{client_ip()}", s.limits["ip"])]
            token = kwargs.get(token_arg) if token_arg else None
            if token is None and token_arg:
                token = request.form.get(token_arg)
            if token:
                limit = s.limits["fresh"] if scope == "fresh" else s.limits["token"]
                rules.append((f"{scope}:{token_ref(token)}", limit))
            verdict = s.limiter.check(*rules)
            if not verdict.allowed:
                event("rate_limited", logger=security_log, route=scope, ip=client_ip(),
                      token=token_ref(token) if token else "", retry_after=verdict.retry_after)
                raise TooManyRequests(retry_after=verdict.retry_after)
            return view(*args, **kwargs)

        return wrapper

    return decorate
