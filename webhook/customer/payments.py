"""/pay (a static page's pay form -> a Stripe Checkout Session) and /stripe/events (Stripe's webhook).

/pay trusts nothing the browser sends but the signed page token: it checks the token (a revoked page learns
nothing), reads the form and calls portal.payments.start.start_payment, the one rule of what may be paid (this
customer's open invoices, less what disputes hold), which prices the payment from the store and records the
attempt before Stripe is called. /stripe/events verifies the signature on the raw body first, refuses an event
of the other mode (live/test) than the configured key, then records the event and its effect in one
transaction (portal.payments.events.apply_event, which never calls Stripe), with the jobs that follow it: the
re-render and publish of the customer's pages and the payer's email, run by the job worker after the answer
(webhook/jobs.py, docs/refresh.md).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe
from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, request

from portal.build.pages import checkout_origin
from portal.core.i18n import N_
from portal.core.signing import TokenInvalid
from portal.payments.checkout import session_params
from portal.payments.events import Change, EventRefused, apply_event, verification_url
from portal.payments.methods import MethodRefused, apply_setup_event, is_setup_event
from portal.payments.pricing import PaymentRefused
from portal.payments.start import MAX_INVOICES, checkout_failed, checkout_opened, start_payment
from portal.payments.state import customer_reason
from portal.store import payments as paystore
from webhook.customer.links import page_url
from webhook.errors import TokenRejected
from webhook.formtoken import page_claims
from webhook.jobs import jobs_recorded
from webhook.logs import event, security_log
from webhook.security import CSP, rate_limited
from webhook.services import client_ip, render, services, translations

log = logging.getLogger(__name__)
bp = Blueprint("payments", __name__)

TOLERANCE = 300  # seconds a signed event may be old (Stripe's default); never 0


class Payments:
    """Per-process payment services: the Stripe client (its connection pool is reused across requests)."""

    def __init__(self, app: Flask):
        settings = app.extensions["portal"].settings
        base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else {}
        self.client = stripe.StripeClient(settings.stripe_secret_key or "sk_unset", base_addresses=base,
                                          max_network_retries=2)


def payments() -> Payments:
    return current_app.extensions["payments"]


def init_app(app: Flask) -> None:
    app.extensions["payments"] = Payments(app)
    app.register_blueprint(bp)
    settings = app.extensions["portal"].settings
    if settings.payments_enabled:
        checkout = checkout_origin(settings.stripe_api_base)
        csp = CSP.replace("form-action 'self'", f"form-action 'self' {checkout}")

        @app.after_request
        def allow_checkout(response: Response) -> Response:
            # Development serves the site's pages from here (`portal serve`): browsers apply the page's
            # form-action to the redirect /pay answers, so Stripe's checkout origin must be allowed on them
            # as it is in the pages' own <meta> policy (portal/build/pages.py). Runs before the security headers.
            if request.endpoint == "site.page" and response.mimetype == "text/html":
                response.headers["Content-Security-Policy"] = csp
            return response


# --- /pay -------------------------------------------------------------------------------------------------


def _refuse(message: str, locale: str) -> Any:
    t = translations(locale)
    return render("webhook/pay_status.html", 400, locale=locale, title=t.gettext("This payment cannot be made"),
                  message=message, detail=t.gettext("Please go back to the page, reload it, and try again."),
                  reference="", account_url="")


@bp.post("/pay")
@rate_limited("pay", token_arg="page_token")
def pay() -> Any:
    s = services()
    if not s.settings.payments_enabled:
        return render("webhook/pay_status.html", 503, title="Online payment is not available",
                      message="Online payment is not configured yet.", detail="", reference="", account_url="")
    claims = page_claims("pay")  # first: a revoked page learns nothing, not even what a dispute holds
    customer_id = claims.customer_id
    locale = s.store.customer_locale(customer_id)
    t = translations(locale)
    # Bounded reads of the form (one more than allowed, so that too many is refused, not cut short).
    chosen = list(dict.fromkeys(request.form.getlist("invoice")))[:MAX_INVOICES + 1]
    typed = {invoice_id: request.form.get(f"amount-{invoice_id}", "") for invoice_id in chosen}
    credit_ids = list(dict.fromkeys(request.form.getlist("credit")))[:MAX_INVOICES]
    try:
        started = start_payment(s.store, s.settings, customer_id, chosen, typed, credit_ids,
                                request.form.get("method", ""), locale=locale)
    except PaymentRefused as exc:
        event("payment_refused", reason=exc.message, ip=client_ip())
        return _refuse(exc.text(t), locale)
    attempt_id = started.attempt_id
    ref = s.signer.pay_ref(attempt_id, claims.key_version)
    params = session_params(attempt_id, customer_id, started.quote, s.settings.effective_webhook_url, ref)
    try:
        session = payments().client.v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"checkout-{attempt_id}"})
    except stripe.StripeError as exc:
        log.error("checkout session failed for %s: %s", attempt_id, exc)
        checkout_failed(s.store, attempt_id)
        if getattr(exc, "code", None) == "amount_too_small":
            # A currency whose minimum Stripe sets by conversion (portal.payments.stripe_amounts.MINIMUM_CHARGE
            # lists the rest).
            return _refuse(t.gettext("This amount is below the smallest payment our payment provider accepts in "
                                     "this currency. Please pay a larger part, or choose another invoice as well."),
                           locale)
        return render("webhook/pay_status.html", 503, locale=locale,
                      title=t.gettext("Payment is not available right now"),
                      message=t.gettext("We could not reach our payment provider. No payment was made."),
                      detail=t.gettext("Please try again in a few minutes."), reference="", account_url="")
    checkout_opened(s.store, attempt_id, session.id)
    return redirect(session.url, 303)


# --- the pages Stripe sends the customer back to ----------------------------------------------------------

# In English; shown in the customer's language (portal/core/i18n.py).
STATUS_TEXT = {
    "verifying": (N_("Verify your bank account"), N_("Your bank could not be connected instantly, so our payment "
                  "provider is sending two small deposits to your account. No money has been taken yet."),
                  N_("When they arrive (usually in 1–2 business days), confirm them with the link below (we have "
                  "emailed it too): the payment starts then. Until then your invoices stay open.")),
    "succeeded": (N_("Payment received"), N_("Thank you: your payment has arrived."), ""),
    "processing": (N_("Bank payment pending"), N_("Your bank payment is on its way. Bank payments usually take 1–4 "
                   "business days to arrive."), N_("Until then your invoices show “payment pending”. We will email "
                   "you when it has arrived.")),
    "created": (N_("Waiting for confirmation"), N_("We have not yet received confirmation of this payment from our "
                "payment provider."), N_("This usually takes a few seconds: reload this page. If you left the "
                "payment page before finishing, no payment was made.")),
    "failed": (N_("Payment failed"), N_("This payment did not go through."), ""),
    "expired": (N_("No payment was made"), N_("This payment was not completed."), ""),
}


def _attempt_for_ref(ref: str) -> tuple[paystore.Attempt, str]:
    """The attempt of a payment page's reference and the customer's account page. The reference expires, and
    dies with its key version like every token: after `portal revoke` it shows nothing of the customer (the
    plain 404), and the account page is the one at the reference's key version, which is the active one."""
    s = services()
    try:
        claims = s.signer.read_pay_ref(ref)
    except TokenInvalid as exc:
        raise TokenRejected("pay_done", ref, str(exc)) from None
    with s.store.begin() as conn:
        attempt = paystore.get_attempt(conn, claims.attempt_id)
    if attempt is None:
        raise TokenRejected("pay_done", ref, "unknown attempt")
    if s.store.active_key_version(attempt.customer_id) != claims.key_version:
        raise TokenRejected("pay_done", ref, "revoked or unknown customer")
    return attempt, page_url(attempt.customer_id, claims.key_version)


def _account_url(customer_id: str) -> str:
    version = services().store.active_key_version(customer_id)
    return page_url(customer_id, version) if version else ""


@bp.get("/pay/done")
@rate_limited("pay_done", token_arg=None)
def pay_done() -> Any:
    """Where Checkout's success redirect lands. The redirect proves nothing: the page says what the events
    recorded so far say, and only "payment received" once an event confirmed it."""
    attempt, account_url = _attempt_for_ref(request.args.get("ref", ""))
    status = {"refunded": "succeeded", "partially_refunded": "succeeded", "disputed": "succeeded",
              "reinstated": "succeeded"}.get(
        attempt.status, attempt.status)
    locale = services().store.customer_locale(attempt.customer_id)
    t = translations(locale)
    title, message, detail = (t.gettext(text) if text else "" for text in STATUS_TEXT[status])
    if status == "failed" and attempt.failure_reason:
        detail = t.gettext("Reason: %(reason)s. Your invoices are open again.") % {
            "reason": t.gettext(customer_reason(stored=attempt.failure_reason))}
    verify_url = verification_url(services().store, attempt.attempt_id) if status == "verifying" else ""
    return render("webhook/pay_status.html", 200, locale=locale, title=title, message=message, detail=detail,
                  reference=attempt.attempt_id, account_url=account_url, verify_url=verify_url)


@bp.get("/pay/cancelled")
@rate_limited("pay_done", token_arg=None)
def pay_cancelled() -> Any:
    attempt, account_url = _attempt_for_ref(request.args.get("ref", ""))
    locale = services().store.customer_locale(attempt.customer_id)
    t = translations(locale)
    return render("webhook/pay_status.html", 200, locale=locale, title=t.gettext("Payment cancelled"),
                  message=t.gettext("You left the payment page: no payment was made."),
                  detail=t.gettext("You can choose invoices and pay again from your account at any time."),
                  reference="", account_url=account_url)


# --- /stripe/events ---------------------------------------------------------------------------------------


@bp.post("/stripe/events")
def stripe_events() -> Any:
    s = services()
    secret = s.settings.stripe_webhook_secret
    if not secret:
        return jsonify(error="stripe events are not configured"), 404
    payload = request.get_data()  # the raw bytes: a re-serialised body would not match the signature
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), request.headers.get("Stripe-Signature"),
                                              secret, tolerance=TOLERANCE)
        data = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        event("stripe_signature_rejected", logging.WARNING, security_log, reason=str(exc)[:200], ip=client_ip())
        return jsonify(error="signature verification failed"), 400
    if not isinstance(data, dict):
        return jsonify(error="not an event"), 400
    expected = key_livemode(s.settings.stripe_secret_key)
    if expected is not None and data.get("livemode") is not expected:
        # A live endpoint's secret with a test key (or the reverse): a configuration error. Not 2xx, so that
        # Stripe keeps the event and redelivers it (for up to 3 days) once the key is fixed, and shows the
        # endpoint failing; nothing is recorded, the alarm on error lines fires.
        event("stripe_livemode_mismatch", logging.ERROR, security_log, event_id=str(data.get("id"))[:100],
              livemode=data.get("livemode"), ip=client_ip())
        return jsonify(error="event mode (live/test) does not match the configured Stripe key"), 400
    if data.get("api_version") not in (None, stripe.api_version):
        # Shapes may differ from what portal.payments.state reads: the endpoint should use the SDK's version.
        event("stripe_api_version_differs", logging.WARNING, api_version=str(data.get("api_version"))[:40],
              expected=stripe.api_version)
    if is_setup_event(data):  # saving or removing a method (portal/payments/methods.py), not a payment
        try:
            jobs_recorded(apply_setup_event(s.store, data))
        except MethodRefused as exc:
            return jsonify(error=exc.message), 400
        return jsonify(received=True)
    try:
        change = apply_event(s.store, data)
    except EventRefused as exc:
        return jsonify(error=exc.message), 400
    if change is not None:
        _after_commit(change)
    else:  # a refund or dispute may have moved money without moving the status: its re-render is queued too
        jobs_recorded()
    return jsonify(received=True)


def key_livemode(secret_key: str) -> bool | None:
    """True for a live key, False for a test key, None when the key does not say (sk_/rk_ prefixes)."""
    for prefix in ("sk_", "rk_"):
        if secret_key.startswith(prefix + "live_"):
            return True
        if secret_key.startswith(prefix + "test_"):
            return False
    return None


def _after_commit(change: Change) -> None:
    """The event's transaction queued the re-render and the payer's email (portal/payments/events.py): wake what
    runs them."""
    event("payment_status", attempt=change.attempt_id, old=change.old, new=change.new)
    jobs_recorded(change.customer_id)
