"""The one place where exceptions become responses: an HTML page for people, JSON for programs.

A rejected token (tampered, wrong purpose, revoked, unknown customer) looks exactly like any unknown
address: the same 404 page, so nobody can probe which tokens were once valid. Only the security log
says why, by token reference.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from portal.core.errors import NotFound, PortalError
from portal.mail.transport import MailError
from portal.store.database import StoreUnavailable
from webhook.logs import event, log, security_log, token_ref
from webhook.services import client_ip, render


class TokenRejected(Exception):
    """A token failed a check. Answered as a plain 404; recorded nowhere but the security log."""

    def __init__(self, route: str, token: str, reason: str):
        super().__init__(reason)
        self.route, self.token, self.reason = route, token, reason


TEXTS = {
    400: ("This request could not be understood", "Please go back and try again."),
    404: ("This page does not exist",
          "The address may be incomplete, or it has been replaced by a newer one. Use the most recent email "
          "you received from us, or ask us for a new link."),
    405: ("This address cannot be used like that", "Please use the link as it was sent to you."),
    413: ("That was too large", "Please try again with less data."),
    429: ("Too many requests", "Please wait a moment before trying again."),
    500: ("Something went wrong on our side", "We have been told about it. Please try again in a few minutes."),
    503: ("The service is busy", "Please try again in a few minutes."),
}


def wants_json() -> bool:
    """Programs get JSON: beacons (nobody reads their body) and clients that prefer it over HTML."""
    if request.path.startswith("/r/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, headers: dict[str, str] | None = None) -> Response:
    title, message = TEXTS.get(status, TEXTS[500] if status >= 500 else TEXTS[400])
    retry = (headers or {}).get("Retry-After")
    if wants_json():
        response = jsonify(error={"status": status, "title": title, "message": message})
        response.status_code = status
    else:
        try:
            html, _, base = render("errors/error.html", status, status=status, title=title, message=message,
                                   retry_after=retry)
            response = Response(html, status, base)
        except Exception:  # noqa: BLE001 - a broken theme template must not hide the original error
            log.exception("error_page_failed")
            response = Response(f"{title}\n\n{message}\n", status, mimetype="text/plain")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle(exc: Exception) -> Response | HTTPException:
    if isinstance(exc, HTTPException):
        if exc.code is None or exc.code < 400:  # routing redirects (e.g. a missing trailing slash) pass through
            return exc
        extra = {k: v for k, v in exc.get_headers() if k.lower() in {"retry-after", "allow"}}
        return error_response(exc.code, extra)
    if isinstance(exc, TokenRejected):
        event("token_rejected", logging.WARNING, security_log, route=exc.route, reason=exc.reason,
              token=token_ref(exc.token), ip=client_ip())
        return error_response(404)
    if isinstance(exc, NotFound):
        return error_response(404)
    if isinstance(exc, StoreUnavailable):
        event("store_unavailable", logging.ERROR, error=exc.message, path_kind=_route_kind())
        return error_response(503, {"Retry-After": "30"})
    if isinstance(exc, MailError):
        event("mail_failed", logging.ERROR, error=exc.message, path_kind=_route_kind())
        return error_response(503, {"Retry-After": "300"})
    if isinstance(exc, PortalError):
        event("portal_error", logging.ERROR, error=exc.message, path_kind=_route_kind())
        return error_response(500)
    log.error("unhandled_exception", exc_info=exc, extra={"fields": {"path_kind": _route_kind()}})
    return error_response(500)


def _route_kind() -> str:
    """The route's name, never the path (paths carry tokens)."""
    return request.endpoint or "unknown"


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, handle)
