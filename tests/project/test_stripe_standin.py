"""The Stripe stand-in refuses what Stripe refuses, so a test that passes against it would pass against Stripe:
parameters stripe-python's types do not know, `payment_method_types`, more than 100 line items, a total below
the minimum charge; and its objects and events carry the fields Stripe's have."""

from __future__ import annotations

import pytest
import stripe

from tests.stripe_standin import StripeStandIn


@pytest.fixture
def stripe_client(standin):
    return stripe.StripeClient("sk_test_standin", base_addresses={"api": standin.base}, max_network_retries=0)


def _items(count: int, amount: int = 1000, currency: str = "usd") -> list[dict]:
    return [{"quantity": 1, "price_data": {"currency": currency, "unit_amount": amount,
                                           "product_data": {"name": f"Invoice {n}"}}} for n in range(count)]


def _create(client, **params):
    base = {"mode": "payment", "success_url": "https://example.test/done", "line_items": _items(1),
            "allowed_payment_method_types": ["card"]}
    return client.v1.checkout.sessions.create(params={**base, **params})


def test_a_valid_session_is_created_with_stripes_fields(stripe_client, standin):
    session = _create(stripe_client, client_reference_id="pa_1",
                      payment_intent_data={"metadata": {"attempt_id": "pa_1"}},
                      payment_method_options={"us_bank_account": {"verification_method": "automatic"}})
    assert (session.livemode, session.amount_total, session.currency, session.payment_intent) == (
        False, 1000, "usd", None)
    intent = standin.intent(standin.sessions[session.id], "succeeded")
    assert {"livemode", "amount", "currency", "latest_charge", "metadata", "status"} <= set(intent)
    event = standin.event("payment_intent.succeeded", intent)
    assert event["api_version"] == stripe.api_version and event["livemode"] is False and event["created"] > 0


@pytest.mark.parametrize(("params", "code"), [
    ({"line_items": [{"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 500,
                                                      "product_data": {"name": "x", "colour": "red"}}}]},
     "parameter_unknown"),
    ({"invoice_number": "INV-1"}, "parameter_unknown"),
    ({"payment_method_types": ["card"]}, "payment_method_types_no_longer_supported"),
    ({"line_items": _items(101, 100)}, "parameter_invalid_integer"),
    ({"line_items": _items(2, 24)}, "amount_too_small"),
    ({"line_items": _items(1, 17_499, "huf")}, "amount_too_small"),  # 174.99 Ft: HUF goes in two decimals
])
def test_what_stripe_refuses_the_standin_refuses(stripe_client, standin, params, code):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _create(stripe_client, **params)
    assert refused.value.code == code
    assert standin.sessions == {}


def test_a_hundred_line_items_and_the_minimum_itself_are_accepted(stripe_client):
    assert _create(stripe_client, line_items=_items(100, 1)).amount_total == 100
    assert _create(stripe_client, line_items=_items(1, 50)).amount_total == 50


def test_a_live_key_gets_live_objects():
    standin = StripeStandIn().start()
    try:
        client = stripe.StripeClient("sk_live_standin", base_addresses={"api": standin.base}, max_network_retries=0)
        assert _create(client).livemode is True
    finally:
        standin.stop()


# --- saved methods: setup-mode sessions and off-session PaymentIntents (tests/stripe_standin_setup.py) -----------


def _saved(client, standin, kind="card", number=""):
    customer = client.v1.customers.create(params={"name": "Acme"})
    session = client.v1.checkout.sessions.create(params={
        "mode": "setup", "currency": "usd", "customer": customer.id, "allowed_payment_method_types": [kind],
        "success_url": "https://example.test/done"})
    events = standin.complete_setup(standin.sessions[session.id], number)
    return customer.id, next(obj for k, obj in events if k == "payment_method.attached")


def _debit(client, customer, method, **extra):
    return client.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "customer": customer, "payment_method": method["id"], "off_session": True,
        "confirm": True, "allowed_payment_method_types": [method["type"]], **extra})


@pytest.mark.parametrize(("params", "code"), [
    ({"line_items": _items(1)}, "parameter_invalid_setup_mode"),
    ({"payment_intent_data": {"metadata": {"a": "b"}}}, "parameter_invalid_setup_mode"),
    ({"currency": ""}, "parameter_missing"),
    ({"customer": "cus_nobody"}, "resource_missing"),
])
def test_what_stripe_refuses_in_setup_mode_the_standin_refuses(stripe_client, standin, params, code):
    customer = stripe_client.v1.customers.create(params={"name": "Acme"})
    base = {"mode": "setup", "currency": "usd", "customer": customer.id, "allowed_payment_method_types": ["card"],
            "success_url": "https://example.test/done"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe_client.v1.checkout.sessions.create(params={k: v for k, v in {**base, **params}.items() if v != ""})
    assert refused.value.code == code


def test_off_session_debits_follow_stripes_rules_and_test_numbers(stripe_client, standin):
    owner, card = _saved(stripe_client, standin)
    other, _ = _saved(stripe_client, standin)
    assert _debit(stripe_client, owner, card).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as foreign:
        _debit(stripe_client, other, card)  # another customer's method
    assert foreign.value.code == "resource_missing"
    needs, strong = _saved(stripe_client, standin, number="4000002760003184")
    with pytest.raises(stripe.CardError) as auth:
        _debit(stripe_client, needs, strong)
    assert auth.value.code == "authentication_required"
    assert auth.value.json_body["error"]["payment_intent"]["status"] == "requires_payment_method"
    bank_owner, bank = _saved(stripe_client, standin, "us_bank_account")
    with pytest.raises(stripe.InvalidRequestError):
        _debit(stripe_client, bank_owner, bank, mandate="mandate_wrong")
    assert _debit(stripe_client, bank_owner, bank).status == "processing"
    stripe_client.v1.payment_methods.detach(card["id"])
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.payment_methods.detach(card["id"])  # not attached any more
