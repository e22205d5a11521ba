"""/staff: login, logout, the overview (KPIs with charts) and staff users (admins). See docs/staff.md.

The tables, exports and dispute actions are in webhook/staff/views.py; authentication in webhook/staff/auth.py.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, make_response, redirect, request, url_for

from portal.staff import kpis as kpi_queries
from portal.staff.charts import Bar, bar_chart, meter
from portal.staff.users import (
    ROLES,
    LoginThrottled,
    StaffError,
    add_user,
    authenticate,
    end_session,
    list_users,
    start_session,
    update_user,
)
from webhook.logs import event, security_log
from webhook.services import client_ip, services
from webhook.staff import (
    approvals,  # noqa: F401 - registers the approver checks on bp
    views,  # noqa: F401 - registers the table and export routes on bp
)
from webhook.staff.auth import (
    LOGIN_NONCE_COOKIE,
    LOGIN_NONCE_SECONDS,
    admin_only,
    check_login_nonce,
    clear_session_cookie,
    current_session,
    is_secure,
    new_login_nonce,
    safe_next,
    session_id_from_cookie,
    set_session_cookie,
)
from webhook.staff.blueprint import BadQuery, bp, current_email, money, page, stylesheet


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.errorhandler(BadQuery)
def bad_query(exc: BadQuery) -> Any:
    return page("staff/message.html", 400, title="This filter cannot be used", message=exc.description)


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    expected, data = stylesheet()
    if name != expected:
        abort(404)
    response = Response(data, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


# --- login ---------------------------------------------------------------------------------------------------


def _login_form(status: int = 200, error: str = "", email: str = "", retry_after: int | None = None) -> Response:
    cookie_value, form_value = new_login_nonce()
    html, code, headers = page("staff/login.html", status, title="Staff login", error=error, email=email,
                               login_token=form_value, next=safe_next(request.values.get("next")))
    response = make_response(html, code, headers)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    response.set_cookie(LOGIN_NONCE_COOKIE, cookie_value, max_age=LOGIN_NONCE_SECONDS, path="/staff/",
                        secure=is_secure(), httponly=True, samesite="Strict")
    return response


@bp.get("/login")
def login() -> Any:
    if current_session() is not None:
        return redirect(safe_next(request.args.get("next")))
    return _login_form()


@bp.post("/login")
def login_post() -> Any:
    check_login_nonce()
    email = request.form.get("email", "")[:320]
    try:
        user = authenticate(services().store, email, request.form.get("password", ""), client_ip())
    except LoginThrottled as exc:
        event("staff_login_throttled", logger=security_log, ip=client_ip(), retry_after=exc.retry_after)
        return _login_form(429, f"Too many failed logins. Try again in {exc.retry_after} seconds.", email,
                           exc.retry_after)
    if user is None:
        event("staff_login_failed", logger=security_log, ip=client_ip())
        return _login_form(401, "The email or the password is wrong.", email)
    event("staff_login", logger=security_log, ip=client_ip(), user=user.email)
    response = redirect(safe_next(request.form.get("next")))
    set_session_cookie(response, start_session(services().store, user))
    response.delete_cookie(LOGIN_NONCE_COOKIE, path="/staff/", secure=is_secure(), httponly=True, samesite="Strict")
    return response


@bp.post("/logout")
def logout() -> Any:
    session_id = session_id_from_cookie()
    if session_id:
        end_session(services().store, session_id)
    response = redirect(url_for("staff.login"))
    clear_session_cookie(response)
    return response


# --- overview ------------------------------------------------------------------------------------------------


@bp.get("/")
def overview() -> Any:
    kpis = kpi_queries.compute(services().store)  # refreshes the receipt rollup first
    return page("staff/overview.html", title="Overview", k=kpis, charts=_charts(kpis),
                definitions=kpi_queries.DEFINITIONS, buckets=kpi_queries.AGING_BUCKETS)


def _percent(value: float | None) -> str:
    return "no data yet" if value is None else f"{value:.1f}%"


def _charts(k: kpi_queries.Kpis) -> dict[str, Any]:
    aging = {}
    for currency, buckets in sorted(k.aging.items()):
        bars = [Bar("current" if name == "current" else f"{name} days", amount, money(amount, currency),
                    warn=name != "current") for name, amount in buckets.items()]
        aging[currency] = bar_chart(f"aging-{currency}", f"Open receivables by days past due, {currency}", bars)
    return {
        "aging": aging,
        "viewed": meter("viewed", "Emailed invoices viewed by a person",
                        None if k.viewed_pct is None else k.viewed_pct / 100, _percent(k.viewed_pct)),
        "adoption": meter("adoption", "E-payment adoption",
                          None if k.epay_pct is None else k.epay_pct / 100, _percent(k.epay_pct)),
    }


# --- staff users (admins) ------------------------------------------------------------------------------------


@bp.get("/users")
@admin_only
def users() -> Any:
    return page("staff/users.html", title="Staff users", users=list_users(services().store), roles=ROLES,
                error="")


@bp.post("/users")
@admin_only
def users_add() -> Any:
    form = request.form
    try:
        created = add_user(services().store, form.get("email", ""), form.get("password", ""),
                           form.get("role", "viewer"))
    except StaffError as exc:
        return page("staff/users.html", 400, title="Staff users", users=list_users(services().store), roles=ROLES,
                    error=exc.message)
    event("staff_user_added", logger=security_log, by=current_email(), user=created.email, role=created.role)
    return redirect(url_for("staff.users"))


@bp.post("/users/update")
@admin_only
def users_update() -> Any:
    form = request.form
    active = {"enable": True, "disable": False}.get(form.get("action", ""))
    role = form.get("role") or None
    try:
        changed = update_user(services().store, form.get("email", ""), role=role, active=active)
    except StaffError as exc:
        return page("staff/users.html", 400, title="Staff users", users=list_users(services().store), roles=ROLES,
                    error=exc.message)
    event("staff_user_changed", logger=security_log, by=current_email(), user=changed.email, role=changed.role,
          active=changed.active)
    return redirect(url_for("staff.users"))

