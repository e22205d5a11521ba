"""A loopback stand-in for the few Stripe API endpoints the webhook calls, at least as strict as Stripe.

It answers create / retrieve / expire Checkout Session and retrieve PaymentIntent, honours idempotency
keys like Stripe does (same key: same answer, nothing created twice), records every request (method, path,
headers, the form-encoded parameters as (key, value) pairs) so tests can assert what was sent, and serves
a small page at each session's `url` standing in for Stripe's hosted checkout.

Strict where Stripe is (each refusal is Stripe's error type and code):
- a parameter is accepted only if stripe-python's `*Params` TypedDict of that endpoint knows it (nested keys,
  list indexes and Literal values included): the names come from the installed SDK, not from a list here;
- `payment_method_types` is refused (the pinned API version does; the SDK would send it);
- at most 100 line items in `payment` mode;
- a session total below Stripe's minimum charge for its currency (kept here in Stripe's units, apart from
  the product's own table, so that a unit mistake in the product shows).
Its objects carry the fields Stripe's do and the product reads (`livemode`, `amount`, `currency`,
`latest_charge`, ...), and `event()` wraps one in an event envelope as Stripe sends it (`api_version`,
`livemode`, `created`).
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
import types
import typing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

import stripe
import typing_extensions
from stripe._request_options import RequestOptions
from stripe.params import (
    CustomerCreateParams,
    PaymentIntentCreateParams,
    PaymentIntentRetrieveParams,
    PaymentMethodDetachParams,
)
from stripe.params.checkout import SessionCreateParams, SessionExpireParams, SessionRetrieveParams

from tests.stripe_standin_setup import SavedMethodsStandIn

MAX_LINE_ITEMS = 100
# Stripe's minimum charge in Stripe's units ("Minimum and maximum charge amounts", docs.stripe.com/currencies):
# HUF is sent as a two-decimal amount.
MINIMUM = {"usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500, "dkk": 250,
           "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000, "myr": 200,
           "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300, "sgd": 50, "thb": 1000}
_OPTIONS = set(RequestOptions.__annotations__)  # client-side options, never form parameters


# --- parameters stripe-python's types know ----------------------------------------------------------------


def _resolve(tp: Any, owner: type) -> Any:
    if isinstance(tp, typing.ForwardRef):
        tp = tp.__forward_arg__
    if isinstance(tp, str):
        tp = eval(tp, vars(sys.modules[owner.__module__]))  # noqa: S307 - the SDK's own annotations
    origin = typing.get_origin(tp)
    if origin in (typing.NotRequired, typing.Required):
        return _resolve(typing.get_args(tp)[0], owner)
    return tp


def _typeddict_keys(cls: type) -> dict[str, Any]:
    return {k: v for k, v in cls.__annotations__.items() if k not in _OPTIONS}


def param_error(params_type: type, key: str, value: str) -> str | None:
    """None when `key=value` (form-encoded, `a[b][0][c]`) is a parameter the SDK's TypedDict knows."""
    path = key.replace("]", "").split("[")
    return None if _accepts(params_type, params_type, path, value) else f"Received unknown parameter: {key}"


def _accepts(tp: Any, owner: type, path: list[str], value: str) -> bool:
    tp = _resolve(tp, owner)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, owner, path, value) for a in args)
    if typing_extensions.is_typeddict(tp):  # the SDK's TypedDicts are typing_extensions'
        keys = _typeddict_keys(tp)
        return bool(path) and path[0] in keys and _accepts(keys[path[0]], tp, path[1:], value)
    if origin in (list, typing.List):  # noqa: UP006 - the SDK's annotations
        return bool(path) and path[0].isdigit() and _accepts(args[0], owner, path[1:], value)
    if origin in (dict, typing.Dict):  # noqa: UP006
        return bool(path) and _accepts(args[1], owner, path[1:], value)
    if path:
        return False
    if origin is typing.Literal:
        return value in {str(a) for a in args}
    if tp is bool:
        return value in ("true", "false")
    if tp is int:
        return value.lstrip("-").isdigit()
    return True  # str, Decimal, untyped objects: any text


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    params: list[tuple[str, str]]

    def param(self, key: str) -> str | None:
        return next((v for k, v in self.params if k == key), None)

    def keys(self) -> set[str]:
        return {k for k, _ in self.params}


@dataclass
class StripeStandIn(SavedMethodsStandIn):
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_creates: bool = False  # answer session creation with a 500 (Stripe down)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    setup_intents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._idempotent: dict[str, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                standin._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                standin._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> StripeStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]

    # --- objects and events as Stripe sends them ---------------------------------------------------------

    def session_for(self, attempt_id: str) -> dict[str, Any]:
        return next(s for s in self.sessions.values() if s["client_reference_id"] == attempt_id)

    def intent(self, session: dict[str, Any], status: str, *, error_code: str = "",
               microdeposits: bool = False) -> dict[str, Any]:
        """The session's PaymentIntent in `status` (created when first asked for), as an event carries it."""
        number = session["id"].rsplit("_", 1)[-1]
        intent = {
            "id": f"pi_test_{number}", "object": "payment_intent", "amount": session["amount_total"],
            "currency": session["currency"], "livemode": session["livemode"], "status": status,
            "metadata": dict(session["_intent_metadata"]), "latest_charge": None, "last_payment_error": None,
            "next_action": None, "payment_method_types": [session["_method"]],
        }
        if status in ("processing", "succeeded") or error_code:
            intent["latest_charge"] = f"ch_test_{number}"
        if error_code:
            intent["last_payment_error"] = {"code": error_code, "message": f"Stand-in: {error_code}",
                                            "type": "invalid_request_error"}
        if microdeposits:
            intent["next_action"] = {"type": "verify_with_microdeposits", "verify_with_microdeposits": {
                "arrival_date": int(time.time()) + 86400, "microdeposit_type": "descriptor_code",
                "hosted_verification_url": f"https://payments.stripe.com/microdeposit/pacs_test_{number}"}}
        session["payment_intent"] = intent["id"]
        self.intents[intent["id"]] = intent
        return dict(intent)

    def session_object(self, session: dict[str, Any], *, status: str = "complete", payment_status: str = "unpaid",
                       email: str = "payer@example.com") -> dict[str, Any]:
        intent = session.get("payment_intent") or self.intent(session, "requires_payment_method")["id"]
        session.update(status=status, payment_status=payment_status, payment_intent=intent,
                       customer_details={"email": email})
        return {k: v for k, v in session.items() if not k.startswith("_")}

    def charge(self, session: dict[str, Any], *, refunded: int = 0, status: str = "succeeded",
               with_metadata: bool = True) -> dict[str, Any]:
        number = session["id"].rsplit("_", 1)[-1]
        return {"id": f"ch_test_{number}", "object": "charge", "amount": session["amount_total"],
                "amount_refunded": refunded, "refunded": refunded >= session["amount_total"],
                "currency": session["currency"], "livemode": session["livemode"], "status": status, "paid": True,
                "payment_intent": f"pi_test_{number}",
                "metadata": dict(session["_intent_metadata"]) if with_metadata else {}}

    def dispute(self, session: dict[str, Any], status: str, *, with_intent: bool = True,
                reason: str = "fraudulent", number: int = 1) -> dict[str, Any]:
        tail = session["id"].rsplit("_", 1)[-1]
        return {"id": f"du_test_{tail}_{number}", "object": "dispute", "amount": session["amount_total"],
                "currency": session["currency"], "livemode": session["livemode"], "status": status,
                "reason": reason, "charge": f"ch_test_{tail}", "metadata": {},
                "payment_intent": f"pi_test_{tail}" if with_intent else None}

    def event(self, kind: str, obj: dict[str, Any], *, event_id: str = "", created: int | None = None,
              livemode: bool | None = None) -> dict[str, Any]:
        return {"id": event_id or f"evt_test_{next(self._ids):08d}", "object": "event",
                "api_version": stripe.api_version, "created": int(time.time()) if created is None else created,
                "livemode": obj.get("livemode", False) if livemode is None else livemode, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "type": kind,
                "data": {"object": {k: v for k, v in obj.items() if not k.startswith("_")}}}

    # --- HTTP -------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        url = urlparse(h.path)
        params = parse_qsl(body or url.query, keep_blank_values=True)
        live = (h.headers.get("Authorization") or "").startswith("Bearer sk_live_")
        with self._lock:
            self.requests.append(Recorded(method, url.path, {k.lower(): v for k, v in h.headers.items()}, params))
            key = h.headers.get("Idempotency-Key")
            if method == "POST" and key and key in self._idempotent:
                status, payload = self._idempotent[key]
            else:
                status, payload = self._route(method, url.path, params, live)
                if method == "POST" and key and status < 500:
                    self._idempotent[key] = (status, payload)
        content_type = "text/html; charset=utf-8" if url.path.startswith("/checkout/") else "application/json"
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("Request-Id", f"req_{next(self._ids)}")
        h.end_headers()
        h.wfile.write(payload)

    def _route(self, method: str, path: str, params: list[tuple[str, str]], live: bool) -> tuple[int, bytes]:
        parts = path.strip("/").split("/")
        if method == "GET" and parts[0] == "checkout" and len(parts) == 2:
            session = self.sessions.get(parts[1])
            if session is None:
                return 404, b"no such session"
            return 200, (f"<!doctype html><html lang=en><title>Stand-in checkout</title><main><h1>Stand-in checkout"
                         f"</h1><p id=session>{session['id']}</p></main></html>").encode()
        endpoint = _endpoint(method, parts)
        if endpoint is None:
            return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path})")
        for key, value in params:
            if key == "payment_method_types" or key.startswith("payment_method_types["):
                return 400, _error("invalid_request_error", "payment_method_types is not supported in this API "
                                   "version: use allowed_payment_method_types",
                                   "payment_method_types_no_longer_supported", key)
            problem = param_error(endpoint, key, value)
            if problem:
                return 400, _error("invalid_request_error", problem, "parameter_unknown", key)
        if endpoint is SessionCreateParams:
            if self.fail_creates:
                return 500, _error("api_error", "stand-in told to fail")
            if dict(params).get("mode") == "setup":
                return self._create_setup(params, live)
            return self._create(params, live)
        if endpoint is CustomerCreateParams:
            return self._create_customer(params, live)
        if endpoint is PaymentMethodDetachParams:
            return self._detach(parts[2])
        if endpoint is PaymentIntentCreateParams:
            return self._create_intent(params, live)
        if endpoint is PaymentIntentRetrieveParams:
            intent = self.intents.get(parts[2])
            if intent is None:
                return 404, _error("invalid_request_error", "No such payment_intent", "resource_missing")
            return 200, json.dumps(intent).encode()
        session = self.sessions.get(parts[3])
        if session is None:
            return 404, _error("invalid_request_error", "No such checkout.session", "resource_missing")
        if endpoint is SessionExpireParams:
            if session["status"] != "open":
                return 400, _error("invalid_request_error", "Only open sessions can be expired.")
            session["status"] = "expired"
        return 200, json.dumps({k: v for k, v in session.items() if not k.startswith("_")}).encode()

    def _create(self, params: list[tuple[str, str]], live: bool) -> tuple[int, bytes]:
        flat = dict(params)
        items = {k.split("]")[0] for k, _ in params if k.startswith("line_items[")}
        if flat.get("mode") == "payment" and len(items) > MAX_LINE_ITEMS:
            return 400, _error("invalid_request_error", f"You may only specify up to {MAX_LINE_ITEMS} line items "
                               "in payment mode.", "parameter_invalid_integer", "line_items")
        currencies = {v for k, v in params if k.endswith("[price_data][currency]")}
        if len(currencies) != 1:
            return 400, _error("invalid_request_error", "All line items must be in one currency.",
                               "parameter_invalid_empty", "line_items")
        currency = currencies.pop()
        total = sum(int(v) * int(flat.get(k.replace("[price_data][unit_amount]", "[quantity]"), "1"))
                    for k, v in params if k.endswith("[price_data][unit_amount]"))
        if total < MINIMUM.get(currency, 1):
            return 400, _error("invalid_request_error", "The Checkout Session's total amount due must add up to at "
                               f"least {MINIMUM.get(currency, 1)} {currency}", "amount_too_small", "line_items")
        session_id = f"cs_test_{next(self._ids):06d}"
        session = {
            "id": session_id, "object": "checkout.session", "mode": flat.get("mode"), "status": "open",
            "livemode": live, "payment_status": "unpaid", "url": f"{self.base}/checkout/{session_id}",
            "client_reference_id": flat.get("client_reference_id"), "payment_intent": None,
            "amount_total": total, "currency": currency, "customer_details": None,
            "metadata": {k[len("metadata["):-1]: v for k, v in params if k.startswith("metadata[")},
            "success_url": flat.get("success_url"), "cancel_url": flat.get("cancel_url"),
            "_intent_metadata": {k[len("payment_intent_data[metadata]["):-1]: v for k, v in params
                                 if k.startswith("payment_intent_data[metadata][")},
            "_method": flat.get("allowed_payment_method_types[0]", "card"),
        }
        self.sessions[session_id] = session
        return 200, json.dumps({k: v for k, v in session.items() if not k.startswith("_")}).encode()


def _endpoint(method: str, parts: list[str]) -> type | None:
    """The SDK's params type of the endpoint a request is for."""
    if parts[:3] == ["v1", "checkout", "sessions"]:
        if method == "POST" and len(parts) == 3:
            return SessionCreateParams
        if method == "POST" and len(parts) == 5 and parts[4] == "expire":
            return SessionExpireParams
        if method == "GET" and len(parts) == 4:
            return SessionRetrieveParams
    if method == "GET" and parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
        return PaymentIntentRetrieveParams
    if method == "POST" and parts == ["v1", "payment_intents"]:
        return PaymentIntentCreateParams
    if method == "POST" and parts == ["v1", "customers"]:
        return CustomerCreateParams
    if method == "POST" and parts[:2] == ["v1", "payment_methods"] and len(parts) == 4 and parts[3] == "detach":
        return PaymentMethodDetachParams
    return None


def _error(kind: str, message: str, code: str = "", param: str = "") -> bytes:
    error = {"type": kind, "message": message, **({"code": code} if code else {}),
             **({"param": param} if param else {})}
    return json.dumps({"error": error}).encode()
