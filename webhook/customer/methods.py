"""Saved methods and autopay: /methods/setup (to Stripe's Checkout in setup mode), /methods/remove, /autopay.

Each form carries the page's signed token, which binds the customer (read by webhook/customer/forms.py, as the
self-service forms' are: a tampered or revoked token is the plain 404 and records nothing); the method, the timing
and the cap are checked against the store by the one portal function each view calls (portal/payments/methods.py,
portal/payments/autopay.py). Another customer's method is refused in words that reveal nothing. The pages are in the
customer's language (its locale in customers.csv), a refusal too (`exc.text(t)`; the log keeps the English).
Stripe's events about methods arrive at /stripe/events (webhook/customer/payments.py), which hands them to
portal.payments.methods.apply_setup_event.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, redirect, request

from portal.payments.autopay import AutopayRefused, choose, turn_off
from portal.payments.methods import MethodRefused, remove_method, start_setup, stripe_client
from webhook.customer.forms import CustomerForm, customer_form
from webhook.customer.links import page_url
from webhook.jobs import jobs_recorded
from webhook.security import rate_limited
from webhook.services import services

bp = Blueprint("methods", __name__)


def init_app(app: Flask) -> None:
    app.extensions["methods_client"] = stripe_client(app.extensions["portal"].settings)
    app.register_blueprint(bp)


STATUS_PAGE = "webhook/autopay_status.html"


def _unavailable(form: CustomerForm) -> Any | None:
    if not services().settings.payments_enabled:
        return form.answer(STATUS_PAGE, 503, outcome="unavailable", message="", account_url="")
    return None


@bp.post("/methods/setup")
@rate_limited("pay", token_arg="page_token")
def setup() -> Any:
    form = customer_form("methods_setup")
    if (off := _unavailable(form)) is not None:
        return off
    s = services()
    try:
        url = start_setup(s.store, s.settings, current_app.extensions["methods_client"], form.customer_id,
                          form.claims.key_version, request.form.get("kind", ""))
    except MethodRefused as exc:
        return form.refused(exc, "method_setup_refused", STATUS_PAGE, 400, outcome="refused",
                            account_url=page_url(form.customer_id, form.claims.key_version))
    return redirect(url, 303)


@bp.post("/methods/remove")
@rate_limited("pay", token_arg="page_token")
def remove() -> Any:
    form = customer_form("methods_remove")
    if (off := _unavailable(form)) is not None:
        return off
    account = page_url(form.customer_id, form.claims.key_version)
    try:
        remove_method(services().store, current_app.extensions["methods_client"], form.customer_id,
                      request.form.get("method", ""))
    except MethodRefused as exc:
        return form.refused(exc, "method_remove_refused", STATUS_PAGE, 400, outcome="refused", account_url=account)
    jobs_recorded(form.customer_id)
    return form.answer(STATUS_PAGE, 200, outcome="removed", message="", account_url=account)


@bp.post("/autopay")
@rate_limited("pay", token_arg="page_token")
def autopay() -> Any:
    form = customer_form("autopay")
    store = services().store
    account = page_url(form.customer_id, form.claims.key_version)
    if request.form.get("action") == "off":
        turn_off(store, form.customer_id)
        jobs_recorded(form.customer_id)
        return form.answer(STATUS_PAGE, 200, outcome="off", message="", account_url=account)
    fields = request.form
    try:
        choose(store, form.customer_id, fields.get("method", ""), fields.get("timing", ""), fields.get("days", ""),
               fields.get("cap", ""))
    except AutopayRefused as exc:
        return form.refused(exc, "autopay_refused", STATUS_PAGE, 400, outcome="refused", account_url=account)
    jobs_recorded(form.customer_id)
    return form.answer(STATUS_PAGE, 200, outcome="on", message="", account_url=account)
