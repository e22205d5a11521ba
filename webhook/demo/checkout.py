"""The demo's test checkout: the few Stripe API calls the product makes for Checkout, a page where the customer
"pays", and the Stripe-signed events Stripe would send after it, POSTed to the app's own /stripe/events.

Only `portal demo` (webhook/demo/__init__.py) and the tests register this blueprint; `create_app` never does,
and no setting or environment variable reaches it (tests/webhook/test_demo_checkout.py). It moves no money: the
product runs its real path against it (the real `stripe` client creates the session, /stripe/events verifies
the signature and records the event), so a bank payment stays pending until "settle" or "fail" is pressed here.

Event shapes follow what Stripe sends for the fields the product reads (portal/payments/state.py): the session's
`client_reference_id` and the PaymentIntent's `metadata.attempt_id` name the attempt; `livemode` false (the demo
key is a test key); `api_version` the SDK's.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import stripe
from flask import Blueprint, Flask, abort, current_app, jsonify, redirect, request, url_for

from portal.core.money import format_money
from portal.payments.stripe_amounts import from_stripe
from webhook.services import render

bp = Blueprint("demo_checkout", __name__)

# Stripe's test card and test bank account: shown prefilled, so that nobody types a real one into a demo.
TEST_CARD = "4242 4242 4242 4242"
TEST_ROUTING, TEST_ACCOUNT = "110000000", "000123456789"


@dataclass
class Session:
    session_id: str
    attempt_id: str
    method: str  # "card" or "us_bank_account"
    currency: str  # Stripe's lower-case code
    amount_total: int  # Stripe's units
    lines: list[tuple[str, int]]
    success_url: str
    cancel_url: str
    metadata: dict[str, str]
    intent_metadata: dict[str, str]
    created: int = field(default_factory=lambda: int(time.time()))
    status: str = "open"  # open, complete, expired
    payment_status: str = "unpaid"
    intent_status: str = "requires_payment_method"  # processing, succeeded, failed
    email: str = ""

    @property
    def number(self) -> str:
        return self.session_id.removeprefix("cs_test_")

    @property
    def intent_id(self) -> str:
        return f"pi_test_{self.number}"

    def api_object(self, base: str) -> dict[str, Any]:
        return {"id": self.session_id, "object": "checkout.session", "mode": "payment", "status": self.status,
                "livemode": False, "payment_status": self.payment_status, "url": f"{base}/{self.session_id}",
                "client_reference_id": self.attempt_id, "created": self.created,
                "payment_intent": self.intent_id if self.status == "complete" else None,
                "amount_total": self.amount_total, "currency": self.currency,
                "customer_details": {"email": self.email} if self.email else None, "metadata": dict(self.metadata),
                "success_url": self.success_url, "cancel_url": self.cancel_url}

    def intent_object(self) -> dict[str, Any]:
        failed = self.intent_status == "failed"
        return {"id": self.intent_id, "object": "payment_intent", "amount": self.amount_total,
                "currency": self.currency, "livemode": False,
                "status": "requires_payment_method" if failed else self.intent_status,
                "metadata": dict(self.intent_metadata), "payment_method_types": [self.method],
                "latest_charge": f"ch_test_{self.number}", "next_action": None,
                "last_payment_error": {"code": "insufficient_funds", "type": "card_error",
                                       "message": "The test checkout failed this payment."} if failed else None}


class Checkout:
    """The test checkout's state: its sessions (in memory: a restarted demo forgets them, as a demo may) and
    the keys the demo configured the product with."""

    def __init__(self, secret_key: str, webhook_secret: str, events_url: str):
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.events_url = events_url
        self.sessions: dict[str, Session] = {}
        self._idempotent: dict[str, str] = {}
        self._lock = threading.Lock()
        self._events = 0

    def create(self, form: Any, idempotency_key: str) -> Session:
        with self._lock:
            if idempotency_key and idempotency_key in self._idempotent:
                return self.sessions[self._idempotent[idempotency_key]]
            session = _session_from_params(form)
            self.sessions[session.session_id] = session
            if idempotency_key:
                self._idempotent[idempotency_key] = session.session_id
            return session

    def send(self, kind: str, obj: dict[str, Any]) -> None:
        """POST one event to the product's /stripe/events, signed as Stripe signs (stripe-python's own scheme)."""
        with self._lock:
            self._events += 1
            event_id = f"evt_demo_{secrets.token_hex(6)}_{self._events}"
        event = {"id": event_id, "object": "event", "api_version": stripe.api_version, "created": int(time.time()),
                 "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                 "type": kind, "data": {"object": obj}}
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, self.webhook_secret,
                                                                   timestamp=int(time.time()))
        sent = urllib.request.Request(self.events_url, data=payload.encode(), method="POST", headers={
            "Stripe-Signature": header, "Content-Type": "application/json", "User-Agent": "portal-demo-checkout"})
        try:
            with urllib.request.urlopen(sent, timeout=30) as answer:  # noqa: S310 - the demo's own address
                answer.read()
        except urllib.error.HTTPError as exc:  # the product refused it: say so on the page, not as a traceback
            raise CheckoutError(f"/stripe/events answered {exc.code} to {kind}: {exc.read()[:200]!r}") from None

    # --- what a payer's action makes Stripe send -----------------------------------------------------------

    def pay(self, session: Session, email: str) -> None:
        session.status, session.email = "complete", email
        if session.method == "card":
            session.payment_status, session.intent_status = "paid", "succeeded"
            self.send("checkout.session.completed", session.api_object(""))
            self.send("payment_intent.succeeded", session.intent_object())
        else:  # a bank debit: the session completes unpaid, the debit is on its way
            session.intent_status = "processing"
            self.send("checkout.session.completed", session.api_object(""))
            self.send("payment_intent.processing", session.intent_object())

    def settle(self, session: Session) -> None:
        session.payment_status, session.intent_status = "paid", "succeeded"
        self.send("payment_intent.succeeded", session.intent_object())
        self.send("checkout.session.async_payment_succeeded", session.api_object(""))

    def fail(self, session: Session) -> None:
        session.intent_status = "failed"
        self.send("payment_intent.payment_failed", session.intent_object())
        self.send("checkout.session.async_payment_failed", session.api_object(""))


class CheckoutError(Exception):
    pass


def _session_from_params(form: Any) -> Session:
    """A session from Stripe's form encoding (`line_items[0][price_data][unit_amount]=...`)."""
    lines: dict[str, dict[str, str]] = {}
    for key, value in form.items(multi=True):
        if key.startswith("line_items["):
            index, _, rest = key[len("line_items["):].partition("]")
            lines.setdefault(index, {})[rest] = value
    items = []
    currencies = set()
    for index in sorted(lines, key=int):
        line = lines[index]
        currencies.add(line.get("[price_data][currency]", ""))
        amount = int(line["[price_data][unit_amount]"]) * int(line.get("[quantity]", "1"))
        items.append((line.get("[price_data][product_data][name]", ""), amount))
    if len(currencies) != 1 or not items:
        raise ValueError("line items must be in one currency")

    def prefixed(prefix: str) -> dict[str, str]:
        return {k[len(prefix):-1]: v for k, v in form.items() if k.startswith(prefix) and k.endswith("]")}

    return Session(
        session_id=f"cs_test_{secrets.token_urlsafe(18)}", attempt_id=form.get("client_reference_id", ""),
        method=form.get("allowed_payment_method_types[0]", "card"), currency=currencies.pop(),
        amount_total=sum(amount for _, amount in items), lines=items, success_url=form.get("success_url", ""),
        cancel_url=form.get("cancel_url", ""), metadata=prefixed("metadata["),
        intent_metadata=prefixed("payment_intent_data[metadata]["))


def checkout() -> Checkout:
    return current_app.extensions["demo_checkout"]


def init_app(app: Flask) -> None:
    settings = app.extensions["portal"].settings
    app.extensions["demo_checkout"] = Checkout(settings.stripe_secret_key, settings.stripe_webhook_secret,
                                               f"{settings.effective_webhook_url}/stripe/events")
    app.register_blueprint(bp)


# --- the Stripe API the product's client calls (base address: <webhook>/demo/stripe) ------------------------


def _api_error(status: int, message: str, kind: str = "invalid_request_error") -> Any:
    return jsonify(error={"type": kind, "message": message}), status


@bp.post("/demo/stripe/v1/checkout/sessions")
def create_session() -> Any:
    c = checkout()
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), c.secret_key.encode()):
        return _api_error(401, "Invalid API Key provided", "authentication_error")
    try:
        session = c.create(request.form, request.headers.get("Idempotency-Key", ""))
    except (ValueError, KeyError) as exc:
        return _api_error(400, f"The test checkout cannot read this session: {exc}")
    return jsonify(session.api_object(url_for("demo_checkout.index", _external=True).rstrip("/")))


# --- the pages -------------------------------------------------------------------------------------------------


def _session(session_id: str) -> Session:
    session = checkout().sessions.get(session_id)
    if session is None:
        abort(404)
    return session


def _render(template: str, status: int = 200, **context: Any) -> Any:
    return render(template, status, title="Test checkout", amount=_amount, url_for=url_for, card=TEST_CARD,
                  routing=TEST_ROUTING, account=TEST_ACCOUNT, **context)


def _amount(session: Session, amount: int) -> str:
    currency = session.currency.upper()
    return format_money(from_stripe(amount, currency), currency, "en_US")


@bp.get("/demo/checkout/")
def index() -> Any:
    sessions = sorted(checkout().sessions.values(), key=lambda s: s.created, reverse=True)
    return _render("webhook/demo_checkouts.html", sessions=sessions)


@bp.get("/demo/checkout/<session_id>")
def page(session_id: str) -> Any:
    session = _session(session_id)
    return _render("webhook/demo_checkout.html", session=session, error="")


def _success_url(session: Session) -> str:
    return session.success_url.replace("{CHECKOUT_SESSION_ID}", session.session_id)


@bp.post("/demo/checkout/<session_id>")
def act(session_id: str) -> Any:
    """The payer's (pay) or the bank's (settle, fail) move. The session id is the capability, as Stripe's
    checkout address is; a session acts only from the state where Stripe's would."""
    session, c = _session(session_id), checkout()
    action = request.form.get("action", "")
    try:
        if action == "pay" and session.status == "open":
            c.pay(session, request.form.get("email", "").strip()[:320] or "payer@example.com")
            return redirect(_success_url(session), 303)
        if action in ("settle", "fail") and session.intent_status == "processing":
            (c.settle if action == "settle" else c.fail)(session)
            return redirect(url_for("demo_checkout.index"), 303)
        if action == "cancel" and session.status == "open":
            session.status = "expired"
            c.send("checkout.session.expired", session.api_object(""))
            return redirect(session.cancel_url, 303)
    except CheckoutError as exc:
        return _render("webhook/demo_checkout.html", 502, session=session, error=str(exc))
    return render("webhook/message.html", 409, title="Not now",
                  message=f"This test payment is {session.status} ({session.intent_status}): nothing was sent.")
