"""The stand-in's saved-methods side: Customers, Checkout in setup mode, PaymentMethods, off-session PaymentIntents.

As strict as Stripe where the portal could go wrong:
- a setup-mode session needs `currency` and `customer` (an existing one), takes no line items and no
  `payment_intent_data` (Stripe refuses them in setup mode), and one payment method type;
- an off-session PaymentIntent needs `confirm=true`, an existing Customer and a PaymentMethod attached to THAT
  Customer (another customer's method is refused as Stripe does), `allowed_payment_method_types` naming the
  method's type, at least Stripe's minimum charge, and for a bank account the mandate its setup collected (when
  one is sent it must be that one);
- detaching a method not attached to any customer is refused.
Stripe's test numbers decide what an off-session charge does (docs.stripe.com/testing): card 4000002760003184
needs authentication (`authentication_required`, HTTP 402 with the PaymentIntent), 4000000000009995 is declined
(`card_declined` / `insufficient_funds`), other cards succeed; a bank account starts `processing`.
"""

from __future__ import annotations

import json
from typing import Any

AUTH_REQUIRED_CARD = "4000002760003184"
DECLINED_CARD = "4000000000009995"
OK_CARD = "4242424242424242"
OK_BANK = "000123456789"
BRANDS = {"4": "visa", "5": "mastercard", "3": "amex"}


def error_body(kind: str, message: str, code: str = "", param: str = "", **extra: Any) -> bytes:
    error = {"type": kind, "message": message, **({"code": code} if code else {}),
             **({"param": param} if param else {}), **extra}
    return json.dumps({"error": error}).encode()


def _form(params: list[tuple[str, str]], prefix: str) -> dict[str, str]:
    return {k[len(prefix) + 1:-1]: v for k, v in params if k.startswith(prefix + "[") and k.count("[") == 1}


class SavedMethodsStandIn:
    """Mixed into StripeStandIn (tests/stripe_standin.py), which supplies `sessions`, `intents`, `_ids`, `base`."""

    customers: dict[str, dict[str, Any]]
    payment_methods: dict[str, dict[str, Any]]
    setup_intents: dict[str, dict[str, Any]]
    sessions: dict[str, dict[str, Any]]
    intents: dict[str, dict[str, Any]]
    base: str

    def _next(self) -> int:
        return next(self._ids)  # type: ignore[attr-defined]

    # --- endpoints ---------------------------------------------------------------------------------------------

    def _create_customer(self, params: list[tuple[str, str]], live: bool) -> tuple[int, bytes]:
        flat = dict(params)
        customer = {"id": f"cus_test_{self._next():06d}", "object": "customer", "livemode": live,
                    "name": flat.get("name"), "email": flat.get("email"), "metadata": _form(params, "metadata")}
        self.customers[customer["id"]] = customer
        return 200, json.dumps(customer).encode()

    def _create_setup(self, params: list[tuple[str, str]], live: bool) -> tuple[int, bytes]:
        flat = dict(params)
        for key, _ in params:
            if key.startswith(("line_items[", "payment_intent_data[")):
                return 400, error_body("invalid_request_error", f"You cannot pass `{key.split('[')[0]}` in "
                                       "`setup` mode.", "parameter_invalid_setup_mode", key)
        if not flat.get("currency"):
            return 400, error_body("invalid_request_error", "currency is required in setup mode.",
                                   "parameter_missing", "currency")
        if flat.get("customer") not in self.customers:
            return 400, error_body("invalid_request_error", f"No such customer: '{flat.get('customer')}'",
                                   "resource_missing", "customer")
        kinds = [v for k, v in params if k.startswith("allowed_payment_method_types[")]
        if len(kinds) != 1:
            return 400, error_body("invalid_request_error", "the stand-in saves one method type per session",
                                   "parameter_invalid_empty", "allowed_payment_method_types")
        if kinds[0] == "us_bank_account" and flat.get("currency") != "usd":
            return 400, error_body("invalid_request_error", "us_bank_account requires currency usd.",
                                   "payment_method_unactivated", "currency")
        session_id = f"cs_test_{self._next():06d}"
        session = {"id": session_id, "object": "checkout.session", "mode": "setup", "status": "open",
                   "livemode": live, "payment_status": "no_payment_required",
                   "url": f"{self.base}/checkout/{session_id}",
                   "client_reference_id": flat.get("client_reference_id"), "customer": flat["customer"],
                   "setup_intent": None, "payment_intent": None, "currency": flat["currency"],
                   "metadata": _form(params, "metadata"), "success_url": flat.get("success_url"),
                   "cancel_url": flat.get("cancel_url"),
                   "_setup_metadata": {k[len("setup_intent_data[metadata]["):-1]: v for k, v in params
                                       if k.startswith("setup_intent_data[metadata][")},
                   "_method": kinds[0]}
        self.sessions[session_id] = session
        return 200, json.dumps({k: v for k, v in session.items() if not k.startswith("_")}).encode()

    def _detach(self, method_id: str) -> tuple[int, bytes]:
        method = self.payment_methods.get(method_id)
        if method is None:
            return 404, error_body("invalid_request_error", f"No such PaymentMethod: '{method_id}'",
                                   "resource_missing", "payment_method")
        if not method["customer"]:
            return 400, error_body("invalid_request_error", "The payment method you provided is not attached to a "
                                   "customer so detachment is impossible.", "payment_method_unexpected_state")
        method["customer"] = None
        return 200, json.dumps(self._public(method)).encode()

    def _create_intent(self, params: list[tuple[str, str]], live: bool) -> tuple[int, bytes]:
        flat = dict(params)
        method = self.payment_methods.get(flat.get("payment_method", ""))
        if flat.get("off_session") == "true" and flat.get("confirm") != "true":
            return 400, error_body("invalid_request_error", "off_session can only be used with confirm=true.",
                                   "parameter_invalid_empty", "off_session")
        if flat.get("customer") not in self.customers:
            return 400, error_body("invalid_request_error", f"No such customer: '{flat.get('customer')}'",
                                   "resource_missing", "customer")
        if method is None or method["customer"] != flat.get("customer"):
            return 400, error_body("invalid_request_error", "The provided PaymentMethod was previously used with a "
                                   "PaymentIntent without Customer attachment, or does not belong to this Customer.",
                                   "resource_missing", "payment_method")
        allowed = [v for k, v in params if k.startswith("allowed_payment_method_types[")]
        if allowed and method["type"] not in allowed:
            return 400, error_body("invalid_request_error", "The PaymentMethod's type is not allowed.",
                                   "payment_intent_incompatible_payment_method", "payment_method")
        if "mandate" in flat and flat["mandate"] != method.get("_mandate"):
            return 400, error_body("invalid_request_error", "No such mandate.", "resource_missing", "mandate")
        amount = int(flat.get("amount", "0"))
        if amount < 50:
            return 400, error_body("invalid_request_error", "Amount must be at least $0.50 usd", "amount_too_small",
                                   "amount")
        number = self._next()
        intent = {"id": f"pi_test_{number:06d}", "object": "payment_intent", "amount": amount,
                  "currency": flat.get("currency"), "livemode": live, "customer": flat["customer"],
                  "payment_method": method["id"], "metadata": _form(params, "metadata"), "latest_charge": None,
                  "last_payment_error": None, "next_action": None, "payment_method_types": [method["type"]],
                  "status": "succeeded"}
        self.intents[intent["id"]] = intent
        source = method.get("_number", "")
        if method["type"] == "us_bank_account":
            intent.update(status="processing", latest_charge=f"py_test_{number:06d}")
        elif source in (AUTH_REQUIRED_CARD, DECLINED_CARD):
            code = "authentication_required" if source == AUTH_REQUIRED_CARD else "card_declined"
            error = {"code": code, "message": f"Stand-in: {code}", "type": "card_error",
                     **({"decline_code": "insufficient_funds"} if code == "card_declined" else {})}
            intent.update(status="requires_payment_method", last_payment_error=error)
            return 402, error_body("card_error", error["message"], code, payment_intent=intent,
                                   **({"decline_code": "insufficient_funds"} if code == "card_declined" else {}))
        else:
            intent["latest_charge"] = f"ch_test_{number:06d}"
        return 200, json.dumps(intent).encode()

    # --- what the customer does at Stripe, and the events it sends ---------------------------------------------

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def complete_setup(self, session: dict[str, Any], number: str = "") -> list[tuple[str, dict[str, Any]]]:
        """The customer saves a method in the setup session: (event type, object) in Stripe's order."""
        kind = session["_method"]
        number = number or (OK_CARD if kind == "card" else OK_BANK)
        n = self._next()
        method = {"id": f"pm_test_{n:06d}", "object": "payment_method", "type": kind, "livemode": session["livemode"],
                  "customer": session["customer"], "_number": number, "metadata": {}}
        if kind == "card":
            method["card"] = {"brand": BRANDS.get(number[0], "visa"), "last4": number[-4:], "exp_month": 12,
                              "exp_year": 2030}
        else:
            method["us_bank_account"] = {"bank_name": "STRIPE TEST BANK", "last4": number[-4:],
                                         "account_type": "checking"}
            method["_mandate"] = f"mandate_test_{n:06d}"
        self.payment_methods[method["id"]] = method
        setup = {"id": f"seti_test_{n:06d}", "object": "setup_intent", "livemode": session["livemode"],
                 "status": "succeeded", "customer": session["customer"], "payment_method": method["id"],
                 "payment_method_types": [kind], "usage": "off_session", "mandate": method.get("_mandate"),
                 "metadata": dict(session["_setup_metadata"])}
        self.setup_intents[setup["id"]] = setup
        session.update(status="complete", setup_intent=setup["id"])
        return [("checkout.session.completed", self._public(session)),
                ("payment_method.attached", self._public(method)), ("setup_intent.succeeded", setup)]

    def detached_event(self, method_id: str) -> tuple[str, dict[str, Any]]:
        return "payment_method.detached", {**self._public(self.payment_methods[method_id]), "customer": None}

    def intent_settled(self, intent_id: str, *, failure: str = "") -> tuple[str, dict[str, Any]]:
        """A bank debit's outcome days later: succeeded, or failed with `failure` (e.g. insufficient_funds)."""
        intent = self.intents[intent_id]
        if failure:
            intent.update(status="requires_payment_method", last_payment_error={
                "code": failure, "message": f"Stand-in: {failure}", "type": "invalid_request_error"})
            return "payment_intent.payment_failed", dict(intent)
        intent.update(status="succeeded")
        return "payment_intent.succeeded", dict(intent)


__all__ = ["AUTH_REQUIRED_CARD", "DECLINED_CARD", "OK_BANK", "OK_CARD", "SavedMethodsStandIn", "error_body"]
