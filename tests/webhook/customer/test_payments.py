"""/pay on SQLite and PostgreSQL against a loopback Stripe stand-in (the parameters sent are asserted): what a
customer may pay and what it costs, the pages Stripe sends the customer back to, credits, and the staff reports
of what was paid. The events that move a payment afterwards: test_stripe_events.py."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest

from portal.balances import position
from portal.core.signing import PAY_REF_MAX_AGE, Signer
from portal.staff.payments_report import cash_application, cash_application_csv, payments
from portal.store import payments as paystore
from tests.payfixtures import (
    attempt_id_sent,
    intent_event,
    load_attempt,
    page_token,
    position_now,
    post_pay,
    row_count,
    send_event,
    session_completed,
    usd_customer,
)
from tests.webhook_helpers import make_app


def _other_invoice(store, customer_id):
    return next(i for d in store.customer_data() if d.customer.customer_id != customer_id for i in d.invoices)


# --- /pay ----------------------------------------------------------------------------------------------------


def test_pay_creates_the_attempt_and_a_checkout_session_with_the_chosen_method_only(client, store, built, standin):
    cid, invoices = usd_customer(store)
    chosen = invoices[:2]
    response = post_pay(client, built, cid, [i.invoice_id for i in chosen])
    assert response.status_code == 303
    [sent] = standin.creates()
    [session] = standin.sessions.values()
    assert response.headers["Location"] == session["url"]
    attempt_id = sent.param("client_reference_id")
    assert attempt_id.startswith("pa_")
    assert sent.param("mode") == "payment"
    assert sent.param("allowed_payment_method_types[0]") == "card"
    assert "allowed_payment_method_types[1]" not in sent.keys()
    assert not any(k.startswith("payment_method_types") for k in sent.keys())  # refused by the current API
    assert sent.param("payment_intent_data[metadata][attempt_id]") == attempt_id
    assert sent.headers["idempotency-key"] == f"checkout-{attempt_id}"
    for n, inv in enumerate(chosen):
        assert sent.param(f"line_items[{n}][price_data][unit_amount]") == str(inv.balance)
        assert sent.param(f"line_items[{n}][price_data][currency]") == "usd"
        assert sent.param(f"line_items[{n}][price_data][product_data][name]") == f"Invoice {inv.number}"
    assert f"line_items[{len(chosen)}][quantity]" not in sent.keys()
    attempt = load_attempt(store, attempt_id)
    assert (attempt.status, attempt.amount, attempt.checkout_session) == (
        "created", sum(i.balance for i in chosen), next(iter(standin.sessions)))
    # Created is not paid: the invoices stay open (an abandoned checkout blocks nothing).
    assert position_now(store, chosen[0].invoice_id).open == chosen[0].balance


def test_bank_payment_gets_the_configured_discount_and_only_the_bank_method(tmp_path, store, built, standin):
    settings = built.replace(ach_discount_bps=100)
    with make_app(settings, tmp_path) as app:
        cid, invoices = usd_customer(store)
        inv = invoices[0]
        assert post_pay(app.test_client(), settings, cid, [inv.invoice_id], "us_bank_account").status_code == 303
    [sent] = standin.creates()
    assert sent.param("allowed_payment_method_types[0]") == "us_bank_account"
    assert not any(k.startswith("payment_method_types") for k in sent.keys())
    discount = (inv.balance * 100 + 5000) // 10000
    assert sent.param("line_items[0][price_data][unit_amount]") == str(inv.balance - discount)
    attempt = load_attempt(store, sent.param("client_reference_id"))
    assert (attempt.subtotal, attempt.adjustment, attempt.amount) == (inv.balance, -discount, inv.balance - discount)


def test_a_card_fee_is_its_own_line(tmp_path, store, built, standin):
    settings = built.replace(card_fee_bps=250)
    with make_app(settings, tmp_path) as app:
        cid, invoices = usd_customer(store)
        assert post_pay(app.test_client(), settings, cid, [invoices[0].invoice_id]).status_code == 303
    [sent] = standin.creates()
    assert sent.param("line_items[1][price_data][unit_amount]") == str((invoices[0].balance * 250 + 5000) // 10000)
    assert sent.param("line_items[1][price_data][product_data][name]") == "Card processing fee"


def test_an_amount_tampered_in_the_form_is_refused_and_nothing_is_recorded(client, store, built, standin):
    cid, invoices = usd_customer(store)
    inv = invoices[0]
    for amount in (f"{inv.balance / 100 + 1:.2f}", "-1", "abc", "0", "1.001"):
        response = post_pay(client, built, cid, [inv.invoice_id], **{f"amount-{inv.invoice_id}": amount})
        assert response.status_code == 400, amount
    assert row_count(store, paystore.payment_attempts) == 0 and standin.creates() == []


def test_a_part_payment_is_what_the_customer_typed_and_the_rest_stays_open(client, store, built, standin):
    cid, invoices = usd_customer(store)
    inv = invoices[0]
    assert post_pay(client, built, cid, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1.00"}).status_code == 303
    attempt_id = attempt_id_sent(standin)
    assert standin.creates()[0].param("line_items[0][price_data][unit_amount]") == "100"
    assert send_event(client, session_completed(attempt_id)).status_code == 200
    assert position_now(store, inv.invoice_id).open == inv.balance - 100


def test_part_payments_can_be_switched_off(tmp_path, store, built, standin):
    settings = built.replace(partial_payments=False)
    with make_app(settings, tmp_path) as app:
        cid, invoices = usd_customer(store)
        inv = invoices[0]
        response = post_pay(app.test_client(), settings, cid, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1.00"})
    assert response.status_code == 400 and b"in full" in response.data
    assert standin.creates() == []


def test_another_customers_invoice_is_refused(client, store, built, standin):
    cid, invoices = usd_customer(store)
    foreign = _other_invoice(store, cid)
    response = post_pay(client, built, cid, [invoices[0].invoice_id, foreign.invoice_id])
    assert response.status_code == 400 and foreign.number.encode() not in response.data
    assert row_count(store, paystore.payment_attempts) == 0 and standin.creates() == []


def test_a_forged_page_token_is_a_plain_404(client, store, built, standin):
    cid, invoices = usd_customer(store)
    response = client.post("/pay", data={"page_token": page_token(built, cid)[:-3] + "xyz", "method": "card",
                                         "invoice": invoices[0].invoice_id})
    assert response.status_code == 404 and standin.creates() == []


def test_stripe_down_answers_503_and_the_attempt_never_counts(client, store, built, standin):
    standin.fail_creates = True
    cid, invoices = usd_customer(store)
    assert post_pay(client, built, cid, [invoices[0].invoice_id]).status_code == 503
    with store.begin() as conn:
        [attempt] = paystore.all_attempts(conn)
    assert attempt.status == "expired"



# --- the pages Stripe sends the customer back to ---------------------------------------------------------


def test_success_page_tells_only_what_the_events_said(client, store, built, standin):
    cid, invoices = usd_customer(store)
    post_pay(client, built, cid, [invoices[0].invoice_id], "us_bank_account")
    sent = standin.creates()[0]
    success = urlparse(sent.param("success_url"))
    page = client.get(f"{success.path}?{success.query}")
    assert page.status_code == 200 and b"Payment received" not in page.data and b"Waiting for confirmation" in page.data
    # A bank payment completes Checkout "unpaid" whether a debit started or microdeposits are on their way:
    # only the PaymentIntent says which (the old code said "pending" here).
    send_event(client, session_completed(sent.param("client_reference_id"), paid=False))
    page = client.get(f"{success.path}?{success.query}")
    assert b"Waiting for confirmation" in page.data and b"pending" not in page.data
    send_event(client, intent_event("payment_intent.processing", sent.param("client_reference_id")))
    page = client.get(f"{success.path}?{success.query}")
    assert b"Bank payment pending" in page.data and "1–4 business days".encode() in page.data
    assert client.get("/pay/done?ref=forged").status_code == 404


def test_the_payment_pages_die_with_a_revocation_expire_and_survive_a_key_rotation(client, store, built, standin,
                                                                                   tmp_path, monkeypatch):
    """The pages Stripe sends the customer back to named the attempt by a reference that never expired and
    outlived `portal revoke`, showing the customer's new page address to whoever held the old one."""
    cid, invoices = usd_customer(store)
    post_pay(client, built, cid, [invoices[0].invoice_id])
    sent = standin.creates()[0]
    attempt_id = sent.param("client_reference_id")
    back = [urlparse(sent.param(name)) for name in ("success_url", "cancel_url")]
    signer = Signer(built)
    first, second = signer.customer_key(cid, 1), signer.customer_key(cid, 2)
    for url in back:
        page = client.get(f"{url.path}?{url.query}")
        assert page.status_code == 200 and f"/c/{first}/index.html" in page.text
    store.revoke(cid)
    for url in back:
        page = client.get(f"{url.path}?{url.query}")
        assert page.status_code == 404, url.path
        assert first not in page.text and second not in page.text and attempt_id not in page.text
    # A reference made at the new key version shows the new account page, until it expires.
    fresh = signer.pay_ref(attempt_id, 2)
    page = client.get(f"/pay/done?ref={fresh}")
    assert page.status_code == 200 and f"/c/{second}/index.html" in page.text and attempt_id in page.text
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - PAY_REF_MAX_AGE - 60)
    stale = signer.pay_ref(attempt_id, 2)
    monkeypatch.undo()
    assert client.get(f"/pay/done?ref={stale}").status_code == 404
    assert client.get(f"/pay/cancelled?ref={stale}").status_code == 404
    # Signed with a secret that has since become a fallback: still read, during the rotation.
    rotated = built.replace(secret_key="the-next-secret-0123456789", secret_key_fallbacks=(built.secret_key,))
    with make_app(rotated, tmp_path / "rotated") as app:
        assert app.test_client().get(f"/pay/done?ref={fresh}").status_code == 200
    stranger = Signer(built.replace(secret_key="someone-elses-secret-0123"))
    assert client.get(f"/pay/done?ref={stranger.pay_ref(attempt_id, 2)}").status_code == 404


# --- reports -------------------------------------------------------------------------------------------------


def test_payments_report_and_cash_application_file(client, store, built, standin):
    cid, invoices = usd_customer(store)
    chosen = invoices[:2]
    post_pay(client, built, cid, [i.invoice_id for i in chosen])
    attempt_id = attempt_id_sent(standin)
    send_event(client, session_completed(attempt_id, intent="pi_r"))
    send_event(client, intent_event("payment_intent.succeeded", attempt_id, intent="pi_r"))
    [row] = payments(store)
    assert row["attempt_id"] == attempt_id and row["customer_id"] == cid and row["status"] == "succeeded"
    assert (row["method"], row["currency"], row["stripe_payment_intent"]) == ("card", "USD", "pi_r")
    assert row["amount"] == sum(i.balance for i in chosen)
    assert [(a["invoice_id"], a["amount"]) for a in row["allocations"]] == sorted(
        (i.invoice_id, i.balance) for i in chosen)
    text = cash_application_csv(store)
    header, *lines = text.strip().splitlines()
    assert header.startswith("payment,date,customer_id,invoice_id,number,amount_applied,currency,method")
    assert len(lines) == 2 and all(attempt_id in line and "pi_r" in line and "ch_1" in line for line in lines)


@pytest.mark.parametrize(("key", "value"), [("ach_discount_bps", -1), ("ach_discount_bps", 1001),
                                            ("card_fee_bps", 301), ("partial_minimum", -5)])
def test_payment_settings_are_validated(key, value):
    from portal.core.errors import ConfigError
    from tests.conftest import make_settings

    with pytest.raises(ConfigError, match=key):
        make_settings("sqlite://", **{key: value})


# --- credits -------------------------------------------------------------------------------------------------


def _customer_with_credit(store):
    for data in store.customer_data():
        if data.customer.currency == "USD" and data.credits and data.invoices:
            return data
    raise AssertionError("no USD customer with a credit in the sample")


def test_a_credit_reduces_the_charge_and_is_used_once(client, store, built, standin):
    data = _customer_with_credit(store)
    cid, credit = data.customer.customer_id, data.credits[0]
    inv = max(data.invoices, key=lambda i: i.balance)
    post_pay(client, built, cid, [inv.invoice_id], credit=credit.credit_id)
    sent = standin.creates()[-1]
    used = min(credit.balance, inv.balance - 50)
    charged = sum(int(v) for k, v in sent.params if k.endswith("[price_data][unit_amount]"))
    assert charged == inv.balance - used
    attempt_id = sent.param("client_reference_id")
    send_event(client, session_completed(attempt_id))
    attempt = load_attempt(store, attempt_id)
    assert (attempt.status, attempt.amount, attempt.credit_applied, attempt.unapplied) == (
        "succeeded", inv.balance - used, used, 0)
    assert position_now(store, inv.invoice_id).open == 0
    with store.begin() as conn:
        source = position.inputs(conn, [cid])
    assert source.credit_available(credit.credit_id, credit.amount, credit.balance, data.as_of) == credit.balance - used
    [row] = [r for r in payments(store) if r["attempt_id"] == attempt_id]
    assert row["credits"] == [{"credit_id": credit.credit_id, "number": credit.number, "amount": used,
                               "applied": used}]
    rows = [r for r in cash_application(store) if r["payment"] == attempt_id]
    assert [r["method"] for r in rows] == ["card", "credit"]
    assert sum(int(r["amount_applied"].replace(".", "")) for r in rows) == attempt.amount  # rows sum to the cash


def test_another_customers_credit_is_refused(client, store, built, standin):
    data = _customer_with_credit(store)
    foreign = next(c for d in store.customer_data() if d.customer.customer_id != data.customer.customer_id
                   for c in d.credits)
    response = post_pay(client, built, data.customer.customer_id, [data.invoices[0].invoice_id],
                        credit=foreign.credit_id)
    assert response.status_code == 400 and standin.creates() == []
