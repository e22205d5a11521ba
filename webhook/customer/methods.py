"""Saved methods and autopay: /methods/setup (to Stripe's Checkout in setup mode), /methods/remove, /autopay.

Each form carries the page's signed token, which binds the customer (webhook/formtoken.py: a tampered or revoked
token is the plain 404 and records nothing); the method, the timing and the cap are checked against the store by
the one portal function each view calls (portal/payments/methods.py, portal/payments/autopay.py). Another
customer's method is refused in words that reveal nothing. The pages are in the customer's language (its locale in
customers.csv), a refusal too (`exc.text(t)`; the log keeps the English). Stripe's events about methods arrive at
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
from webhook.services import client_ip, render, services, translations

bp = Blueprint("methods", __name__)


def init_app(app: Flask) -> None:
    app.extensions["methods_client"] = stripe_client(app.extensions["portal"].settings)
    app.register_blueprint(bp)


def _status(locale: str, outcome: str, code: int, account_url: str, message: str = "") -> Any:
    return render("webhook/autopay_status.html", code, locale=locale, outcome=outcome, message=message,
                  account_url=account_url)


def _unavailable(locale: str) -> Any | None:
    if not services().settings.payments_enabled:
        return _status(locale, "unavailable", 503, "")
    return None


@bp.post("/methods/setup")
@rate_limited("pay", token_arg="page_token")
def setup() -> Any:
    claims = page_claims("methods_setup")
    s = services()
    locale = s.store.customer_locale(claims.customer_id)
    if (off := _unavailable(locale)) is not None:
        return off
    try:
        url = start_setup(s.store, s.settings, current_app.extensions["methods_client"], claims.customer_id,
                          claims.key_version, request.form.get("kind", ""))
    except MethodRefused as exc:
        event("method_setup_refused", reason=exc.message, ip=client_ip())
        return _status(locale, "refused", 400, page_url(claims.customer_id, claims.key_version),
                       exc.text(translations(locale)))
    return redirect(url, 303)


@bp.post("/methods/remove")
@rate_limited("pay", token_arg="page_token")
def remove() -> Any:
    claims = page_claims("methods_remove")
    s = services()
    locale = s.store.customer_locale(claims.customer_id)
    if (off := _unavailable(locale)) is not None:
        return off
    account = page_url(claims.customer_id, claims.key_version)
    try:
        remove_method(s.store, current_app.extensions["methods_client"], claims.customer_id,
                      request.form.get("method", ""))
    except MethodRefused as exc:
        event("method_remove_refused", reason=exc.message, ip=client_ip())
        return _status(locale, "refused", 400, account, exc.text(translations(locale)))
    jobs_recorded(claims.customer_id)
    return _status(locale, "removed", 200, account)


@bp.post("/autopay")
@rate_limited("pay", token_arg="page_token")
def autopay() -> Any:
    claims = page_claims("autopay")
    s = services()
    locale = s.store.customer_locale(claims.customer_id)
    account = page_url(claims.customer_id, claims.key_version)
    if request.form.get("action") == "off":
        turn_off(s.store, claims.customer_id)
        jobs_recorded(claims.customer_id)
        return _status(locale, "off", 200, account)
    form = request.form
    try:
        choose(s.store, claims.customer_id, form.get("method", ""), form.get("timing", ""), form.get("days", ""),
               form.get("cap", ""))
    except AutopayRefused as exc:
        event("autopay_refused", reason=exc.message, ip=client_ip())
        return _status(locale, "refused", 400, account, exc.text(translations(locale)))
    jobs_recorded(claims.customer_id)
    return _status(locale, "on", 200, account)
