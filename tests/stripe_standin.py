"""A loopback stand-in for the few Stripe API endpoints the webhook calls, in the API's shapes.

It answers create / retrieve / expire Checkout Session and retrieve PaymentIntent, honours idempotency
keys like Stripe does (same key: same answer, nothing created twice), records every request (method, path,
headers, the form-encoded parameters as (key, value) pairs) so tests can assert what was sent, and serves
a small page at each session's `url` standing in for Stripe's hosted checkout.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse


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
class StripeStandIn:
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_creates: bool = False  # answer session creation with a 500 (Stripe down)

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

    def add_intent(self, intent_id: str, attempt_id: str) -> None:
        self.intents[intent_id] = {"id": intent_id, "object": "payment_intent", "status": "succeeded",
                                   "metadata": {"attempt_id": attempt_id}}

    # --- HTTP -------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        url = urlparse(h.path)
        params = parse_qsl(body or url.query, keep_blank_values=True)
        with self._lock:
            self.requests.append(Recorded(method, url.path, {k.lower(): v for k, v in h.headers.items()}, params))
            key = h.headers.get("Idempotency-Key")
            if method == "POST" and key and key in self._idempotent:
                status, payload = self._idempotent[key]
            else:
                status, payload = self._route(method, url.path, params)
                if method == "POST" and key and status < 500:
                    self._idempotent[key] = (status, payload)
        content_type = "text/html; charset=utf-8" if url.path.startswith("/checkout/") else "application/json"
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(payload)))
        h.send_header("Request-Id", f"req_{next(self._ids)}")
        h.end_headers()
        h.wfile.write(payload)

    def _route(self, method: str, path: str, params: list[tuple[str, str]]) -> tuple[int, bytes]:
        parts = path.strip("/").split("/")
        if method == "GET" and parts[0] == "checkout" and len(parts) == 2:
            session = self.sessions.get(parts[1])
            if session is None:
                return 404, b"no such session"
            return 200, (f"<!doctype html><html lang=en><title>Stand-in checkout</title><main><h1>Stand-in checkout"
                         f"</h1><p id=session>{session['id']}</p></main></html>").encode()
        if parts[:2] == ["v1", "checkout"] and parts[2:3] == ["sessions"]:
            if method == "POST" and len(parts) == 3:
                if self.fail_creates:
                    return 500, _error("api_error", "stand-in told to fail")
                return 200, json.dumps(self._create(params)).encode()
            session = self.sessions.get(parts[3]) if len(parts) > 3 else None
            if session is None:
                return 404, _error("invalid_request_error", "No such checkout.session")
            if method == "POST" and parts[4:] == ["expire"]:
                if session["status"] != "open":
                    return 400, _error("invalid_request_error", "Only open sessions can be expired.")
                session["status"] = "expired"
            return 200, json.dumps(session).encode()
        if method == "GET" and parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
            intent = self.intents.get(parts[2])
            if intent is None:
                return 404, _error("invalid_request_error", "No such payment_intent")
            return 200, json.dumps(intent).encode()
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path})")

    def _create(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        flat = dict(params)
        session_id = f"cs_test_{next(self._ids):06d}"
        total = sum(int(v) * int(flat.get(k.replace("[price_data][unit_amount]", "[quantity]"), "1"))
                    for k, v in params if k.endswith("[price_data][unit_amount]"))
        session = {
            "id": session_id, "object": "checkout.session", "mode": flat.get("mode"), "status": "open",
            "payment_status": "unpaid", "url": f"{self.base}/checkout/{session_id}",
            "client_reference_id": flat.get("client_reference_id"), "payment_intent": None,
            "amount_total": total, "currency": flat.get("line_items[0][price_data][currency]"),
            "metadata": {k[len("metadata["):-1]: v for k, v in params if k.startswith("metadata[")},
            "success_url": flat.get("success_url"), "cancel_url": flat.get("cancel_url"),
        }
        self.sessions[session_id] = session
        return session


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}).encode()
