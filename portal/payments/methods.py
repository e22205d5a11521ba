"""Saved payment methods: a Stripe Customer per portal customer, set-up through Checkout, removal (docs/autopay.md).

Guarantees:
- One Stripe Customer per portal customer: created once (idempotency key `customer-<id>`), its id stored under the
  portal customer's primary key, so two tabs cannot leave two Customers in use.
- A method is saved only by Stripe's signed events (`setup_intent.succeeded`, `payment_method.attached`), never by
  the return from Checkout (which proves nothing), and only for a Stripe Customer this portal created; whose it is
  comes from our table, never from the browser.
- Bank accounts are saved with instant verification only: a method that waited days for microdeposits would need a
  state of its own, and autopay must never debit an account that was not verified. Checkout shows Stripe's ACH
  mandate, and our page shows the authorisation the customer gives before they leave for it.
- Removal checks that the method is this customer's (another customer's is refused in words that reveal nothing),
  detaches it at Stripe, and turns autopay off where it used it, in one transaction after Stripe answered.
- Setup events are recorded once (the event id in `stripe_events`, first statement of the transaction), like the
  payment events (portal/payments/events.py), and applied in any order: a removal is final.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError

from portal.core.config import Settings
from portal.core.errors import CustomerRefusal
from portal.core.i18n import N_
from portal.core.signing import Signer
from portal.store import autopay as apstore
from portal.store import jobqueue
from portal.store import payments as paystore
from portal.store.database import Store, StoreUnavailable

log = logging.getLogger(__name__)

KINDS = ("card", "us_bank_account")
SETUP_EVENTS = frozenset({"setup_intent.succeeded", "setup_intent.setup_failed", "payment_method.attached",
                          "payment_method.detached", "payment_method.updated"})


class MethodRefused(CustomerRefusal):
    """A request about saved methods that cannot be done; the message is the customer's."""

    exit_code = 2


def stripe_client(settings: Settings) -> stripe.StripeClient:
    """The Stripe client of the portal's own calls (the webhook's forms and `portal autopay`)."""
    base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else {}
    return stripe.StripeClient(settings.stripe_secret_key or "sk_unset", base_addresses=base, max_network_retries=2)


def account_page(settings: Settings, customer_id: str, key_version: int) -> str:
    key = Signer(settings).customer_key(customer_id, key_version)
    return f"{settings.site_url.rstrip('/')}/c/{key}/index.html"


def ensure_stripe_customer(store: Store, client: stripe.StripeClient, customer_id: str,
                           now: datetime | None = None) -> str:
    """The Stripe Customer id of a portal customer, created at Stripe the first time."""
    with store.begin() as conn:
        known = apstore.stripe_customer(conn, customer_id)
    if known:
        return known
    name, contacts = store.customer_contacts(customer_id)
    email = next((c.email for c in contacts if c.role == "billing"), "")
    params: dict[str, Any] = {"name": name[:256], "metadata": {"portal_customer_id": customer_id}}
    if email:
        params["email"] = email
    created = client.v1.customers.create(params=params, options={"idempotency_key": f"customer-{customer_id}"})
    with store.begin() as conn:
        return apstore.save_stripe_customer(conn, customer_id, created.id, now or datetime.now(UTC))


def setup_params(settings: Settings, customer_id: str, stripe_customer: str, kind: str, key_version: int
                 ) -> dict[str, Any]:
    """The Checkout Session in setup mode that saves one method of `kind` to the customer's Stripe Customer."""
    back = account_page(settings, customer_id, key_version)
    params: dict[str, Any] = {
        "mode": "setup", "currency": "usd", "customer": stripe_customer, "allowed_payment_method_types": [kind],
        "client_reference_id": f"setup:{customer_id}"[:200],
        "success_url": back + "#methods", "cancel_url": back + "#methods",
        "setup_intent_data": {"metadata": {"customer_id": customer_id}},
        "metadata": {"customer_id": customer_id},
    }
    if kind == "us_bank_account":
        params["payment_method_options"] = {"us_bank_account": {"verification_method": "instant"}}
    return params


def start_setup(store: Store, settings: Settings, client: stripe.StripeClient, customer_id: str, key_version: int,
                kind: str, now: datetime | None = None) -> str:
    """Checkout's URL where the verified customer saves a card or a bank account. Raises MethodRefused."""
    if kind not in KINDS:
        raise MethodRefused(N_("Please choose a card or a bank account."))
    now = now or datetime.now(UTC)
    try:
        stripe_customer = ensure_stripe_customer(store, client, customer_id, now)
        params = setup_params(settings, customer_id, stripe_customer, kind, key_version)
        session = client.v1.checkout.sessions.create(
            params=params, options={"idempotency_key": f"setup-{customer_id}-{kind}-{int(now.timestamp()) // 60}"})
    except stripe.StripeError as exc:
        log.error("setup session failed for %s: %s", customer_id, exc)
        raise MethodRefused(N_("We could not reach our payment provider. Nothing was saved; please try again "
                               "in a few minutes.")) from None
    return str(session.url)


def remove_method(store: Store, client: stripe.StripeClient, customer_id: str, method_id: str,
                  now: datetime | None = None) -> apstore.Method:
    """Detach the customer's method at Stripe, mark it removed and stop autopay on it. Raises MethodRefused."""
    with store.begin() as conn:
        found = apstore.method(conn, method_id[:255])
    if found is None or found.customer_id != customer_id or found.detached_at is not None:
        raise MethodRefused(N_("This payment method is not saved on your account."))
    try:
        client.v1.payment_methods.detach(found.method_id)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) != "resource_missing" and "not attached" not in str(exc):
            log.error("detach failed for %s: %s", found.method_id, exc)
            raise MethodRefused(N_("We could not remove this payment method just now. Please try again later.")) \
                from None
        # Already detached at Stripe (by its dashboard, or by the event that is on its way): remove it here too.
    except stripe.StripeError as exc:
        log.error("detach failed for %s: %s", found.method_id, exc)
        raise MethodRefused(N_("We could not reach our payment provider. Nothing was removed; please try "
                               "again in a few minutes.")) from None
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        _removed(store, conn, found.method_id, customer_id, "the payment method was removed", now)
    return found


def _removed(store: Store, conn: Any, method_id: str, customer_id: str, reason: str, now: datetime) -> None:
    if apstore.mark_detached(conn, method_id, now):
        store.add_event(conn, "method_removed", customer_id, detail=method_id)
    for stopped in apstore.stop_for_method(conn, method_id, reason, now):
        store.add_event(conn, "autopay_stopped", stopped, detail=reason)
    jobqueue.enqueue_refresh(conn, customer_id, now)


# --- Stripe's events about methods ----------------------------------------------------------------------------


def is_setup_event(event: Mapping[str, Any]) -> bool:
    """An event about saving or removing methods (setup-mode sessions included), not about a payment."""
    kind = str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    return kind in SETUP_EVENTS or (kind.startswith("checkout.session.") and obj.get("mode") == "setup")


def _str(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _facts(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a PaymentMethod object says that the page shows."""
    kind = str(obj.get("type") or "")
    detail = obj.get(kind) or {}
    label = detail.get("brand") if kind == "card" else detail.get("bank_name")
    return {"kind": kind if kind in KINDS else "", "label": str(label or "")[:100],
            "last4": str(detail.get("last4") or "")[:4]}


def apply_setup_event(store: Store, event: Mapping[str, Any], now: datetime | None = None) -> str:
    """Record a verified setup event once and apply it; the portal customer it changed ("" for none)."""
    event_id, kind = str(event.get("id") or ""), str(event.get("type") or "")
    if not event_id:
        raise MethodRefused("an event without an id")
    obj = (event.get("data") or {}).get("object") or {}
    now = now or datetime.now(UTC)
    try:
        with store.begin() as conn:
            paystore.record_stripe_event(conn, event_id, kind[:100], now)
            return _apply(store, conn, kind, obj, now)
    except StoreUnavailable as exc:
        if isinstance(exc.__cause__, IntegrityError):
            with store.begin() as conn:
                if paystore.event_seen(conn, event_id):
                    return ""
        raise


def _apply(store: Store, conn: Any, kind: str, obj: Mapping[str, Any], now: datetime) -> str:
    method_id = _str(obj.get("payment_method")) if kind.startswith("setup_intent.") else _str(obj.get("id"))
    if kind == "payment_method.detached":
        found = apstore.method(conn, method_id)
        if found is None:
            return ""
        _removed(store, conn, method_id, found.customer_id, "the payment method was removed", now)
        return found.customer_id
    customer_id = apstore.customer_of_stripe(conn, _str(obj.get("customer")))
    claimed = str((obj.get("metadata") or {}).get("customer_id") or "")
    if not customer_id or (claimed and claimed != customer_id):
        return ""  # another integration's customer, or metadata that contradicts our own record
    if kind.startswith("checkout.session."):
        store.add_event(conn, f"method_setup_{kind.rsplit('.', 1)[-1]}"[:40], customer_id, detail=_str(obj.get("id")))
        return customer_id
    if not method_id or kind == "setup_intent.setup_failed":
        return ""
    if kind == "setup_intent.succeeded":
        types = obj.get("payment_method_types") or []
        facts = {"kind": types[0] if len(types) == 1 and types[0] in KINDS else "", "mandate": _str(obj.get("mandate")),
                 "ready": True}
    else:  # payment_method.attached / updated: the details the page shows
        facts = _facts(obj)
    apstore.upsert_method(conn, method_id, customer_id, now, **facts)
    jobqueue.enqueue_refresh(conn, customer_id, now)
    return customer_id
