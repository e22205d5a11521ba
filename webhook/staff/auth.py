"""Staff authentication for /staff: the session cookie, CSRF checks, login, logout, role checks.

- The cookie holds a random session id signed with the portal's secret (its own salt, so no customer token
  or other signed value can pass for it); the database holds the session (portal/staff/users.py), so
  logout, a disabled user or a changed role end it on every worker at once.
- Cookie flags: HttpOnly, SameSite=Lax, and over https Secure with the `__Host-` prefix (no Domain, Path=/),
  so neither scripts nor sibling subdomains can read or plant it.
- CSRF: every POST carries the session's token in a form field (compared in constant time) and, when the
  browser sends an Origin header, it must be ours. The login form, which has no session yet, uses a
  double-submit nonce: a random cookie and the same value signed in the form.
- Only this cookie authenticates: customer tokens in paths, query strings or headers mean nothing here.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, g, redirect, request, url_for
from itsdangerous import BadSignature, Signer

from portal.staff.users import SESSION_MAX, Session, load_session
from webhook.logs import event, security_log
from webhook.services import client_ip, services

COOKIE = "staff_session"
SECURE_COOKIE = "__Host-staff_session"
LOGIN_NONCE_COOKIE = "staff_login"
LOGIN_NONCE_SECONDS = 3600
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


def _signer(salt: str) -> Signer:
    # Newest secret signs; the fallbacks still verify, so a key rotation does not log everybody out at once.
    s = services().settings
    return Signer([*reversed(s.secret_key_fallbacks), s.secret_key], salt=salt)


def is_secure() -> bool:
    return request.is_secure or services().settings.effective_webhook_url.startswith("https://")


def cookie_name() -> str:
    return SECURE_COOKIE if is_secure() else COOKIE


def session_id_from_cookie() -> str | None:
    value = request.cookies.get(cookie_name())
    if not value:
        return None
    try:
        return _signer("staff-session").unsign(value).decode()
    except BadSignature:
        event("staff_cookie_rejected", logger=security_log, ip=client_ip())
        return None


def current_session() -> Session | None:
    """The logged-in staff session for this request (looked up once per request)."""
    if "staff" not in g:
        session_id = session_id_from_cookie()
        g.staff = load_session(services().store, session_id) if session_id else None
    return g.staff


def set_session_cookie(response: Response, session_id: str) -> None:
    response.set_cookie(cookie_name(), _signer("staff-session").sign(session_id).decode(),
                        max_age=int(SESSION_MAX.total_seconds()), path="/", secure=is_secure(), httponly=True,
                        samesite="Lax")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(cookie_name(), path="/", secure=is_secure(), httponly=True, samesite="Lax")


# --- CSRF ---------------------------------------------------------------------------------------------------


def _same_origin() -> bool:
    """False only when the browser says the form came from another origin. No header (older clients, curl)
    and "null" say nothing: with our Referrer-Policy no-referrer, Chromium sends "null" even for our own
    forms. The session's token is the real check; this one only adds a second lock when the browser helps."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    theirs = urlsplit(origin)
    # Our own address as the browser sees it: behind CloudFront the Host header reaching us is the origin's
    # (API Gateway's), so the configured public addresses count as ours too.
    settings = services().settings
    ours = {urlsplit(url)[:2] for url in (request.host_url, settings.effective_webhook_url, settings.site_url)}
    return (theirs.scheme, theirs.netloc) in ours


def check_csrf(expected: str) -> None:
    sent = request.form.get("csrf_token", "")
    if not (_same_origin() and sent and hmac.compare_digest(sent.encode(), expected.encode())):
        event("staff_csrf_rejected", logger=security_log, ip=client_ip(), endpoint=request.endpoint or "")
        abort(403)


def new_login_nonce() -> tuple[str, str]:
    """(cookie value, form value) for the login form's double-submit check."""
    nonce = secrets.token_urlsafe(24)
    return nonce, _signer("staff-login").sign(nonce).decode()


def check_login_nonce() -> None:
    cookie = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    try:
        signed = _signer("staff-login").unsign(request.form.get("csrf_token", "")).decode()
    except BadSignature:
        signed = ""
    if not (_same_origin() and cookie and signed and hmac.compare_digest(cookie.encode(), signed.encode())):
        event("staff_csrf_rejected", logger=security_log, ip=client_ip(), endpoint="staff.login")
        abort(403)


# --- guards -------------------------------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """A path inside /staff to go back to after logging in; anything else (other sites, //host, a control
    character, which would end the Location header early or be refused in it) is dropped."""
    if target and target.startswith("/staff/") and "//" not in target and "\\" not in target \
            and not _CONTROL.search(target):
        return target
    return url_for("staff.overview")


def require_staff() -> Response | None:
    """Run before every /staff request but the login page: anonymous GETs go to the login page, anything
    else is refused; a POST must carry the session's CSRF token."""
    if request.endpoint in {"staff.login", "staff.login_post", "staff.asset"}:
        return None
    session = current_session()
    if session is None:
        if request.method in {"GET", "HEAD"}:
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
        abort(403)
    if request.method not in {"GET", "HEAD"}:
        check_csrf(session.csrf_token)
    return None


def admin_only(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = current_session()
        if session is None or not session.user.is_admin:
            event("staff_forbidden", logger=security_log, ip=client_ip(), endpoint=request.endpoint or "",
                  user=session.user.email if session else "")
            abort(403)
        return view(*args, **kwargs)

    return wrapper
