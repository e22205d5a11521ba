"""Saved methods and autopay: /methods/setup (to Stripe's Checkout in setup mode), /methods/remove, /autopay.

Each form carries the page's signed token, which binds the customer (webhook/formtoken.py: a tampered or revoked
token is the plain 404 and records nothing); the method, the timing and the cap are checked against the store by
the one portal function each view calls (portal/payments/methods.py, portal/payments/autopay.py). Another
customer's method is refused in words that reveal nothing. Stripe's events about methods arrive at
/stripe/events (webhook/customer/payments.py), which hands them to portal.payments.methods.apply_setup_event.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, redirect, request

from portal.payments.autopay import AutopayRefused, choose, turn_off
from portal.payments.methods import MethodRefused, remove_method, start_setup, stripe_client
from webhook.customer.links import page_url
from webhook.formtoken import page_claims
from webhook.jobs import jobs_recorded
from webhook.logs import event
from webhook.security import rate_limited
from webhook.services import client_ip, render, services

bp = Blueprint("methods", __name__)


def init_app(app: Flask) -> None:
    app.extensions["methods_client"] = stripe_client(app.extensions["portal"].settings)
    app.register_blueprint(bp)


def _status(outcome: str, code: int, account_url: str, message: str = "") -> Any:
    return render("webhook/autopay_status.html", code, outcome=outcome, message=message, account_url=account_url)


def _unavailable() -> Any | None:
    if not services().settings.payments_enabled:
        return _status("unavailable", 503, "")
    return None


@bp.post("/methods/setup")
@rate_limited("pay", token_arg="page_token")
def setup() -> Any:
    claims = page_claims("methods_setup")
    if (off := _unavailable()) is not None:
        return off
    s = services()
    try:
        url = start_setup(s.store, s.settings, current_app.extensions["methods_client"], claims.customer_id,
                          claims.key_version, request.form.get("kind", ""))
    except MethodRefused as exc:
        event("method_setup_refused", reason=exc.message, ip=client_ip())
        return _status("refused", 400, page_url(claims.customer_id, claims.key_version), exc.message)
    return redirect(url, 303)


@bp.post("/methods/remove")
@rate_limited("pay", token_arg="page_token")
def remove() -> Any:
    claims = page_claims("methods_remove")
    if (off := _unavailable()) is not None:
        return off
    s = services()
    account = page_url(claims.customer_id, claims.key_version)
    try:
        remove_method(s.store, current_app.extensions["methods_client"], claims.customer_id,
                      request.form.get("method", ""))
    except MethodRefused as exc:
        event("method_remove_refused", reason=exc.message, ip=client_ip())
        return _status("refused", 400, account, exc.message)
    jobs_recorded(claims.customer_id)
    return _status("removed", 200, account)


@bp.post("/autopay")
@rate_limited("pay", token_arg="page_token")
def autopay() -> Any:
    claims = page_claims("autopay")
    s = services()
    account = page_url(claims.customer_id, claims.key_version)
    if request.form.get("action") == "off":
        turn_off(s.store, claims.customer_id)
        jobs_recorded(claims.customer_id)
        return _status("off", 200, account)
    form = request.form
    try:
        choose(s.store, claims.customer_id, form.get("method", ""), form.get("timing", ""), form.get("days", ""),
               form.get("cap", ""))
    except AutopayRefused as exc:
        event("autopay_refused", reason=exc.message, ip=client_ip())
        return _status("refused", 400, account, exc.message)
    jobs_recorded(claims.customer_id)
    return _status("on", 200, account)
