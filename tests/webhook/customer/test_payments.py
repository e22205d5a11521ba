"""Payments end to end on SQLite and PostgreSQL: /pay against a loopback Stripe stand-in (the parameters
sent are asserted), events signed with Stripe's real scheme, the attempt's forward-only state machine, the
re-rendered pages, the emails, and the staff reports."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import stripe
from sqlalchemy import func, select

from portal.balances import position
from portal.build.pages import invoice_slug
from portal.build.pipeline import Manifest, render_site
from portal.core.signing import PAY_REF_MAX_AGE, Signer
from portal.staff.reports import cash_application, cash_application_csv, payments
from portal.store import payments as paystore
from portal.store.database import StoreUnavailable
from tests.payfixtures import WEBHOOK_SECRET
from tests.webhook_helpers import all_events, make_app, outbox_messages


def _usd_customer(store):
    """(customer id, its open invoices) of a USD customer with at least two open invoices."""
    for data in store.customer_data():
        if data.customer.currency == "USD" and len(data.invoices) >= 2:
            return data.customer.customer_id, data.invoices
    raise AssertionError("the sample has no USD customer with two invoices")


def _other_invoice(store, customer_id):
    return next(i for d in store.customer_data() if d.customer.customer_id != customer_id for i in d.invoices)


def _token(settings, customer_id):
    return Signer(settings).page_token("page", customer_id, 1)


def _pay(client, settings, customer_id, invoice_ids, method="card", **form):
    data = {"page_token": _token(settings, customer_id), "invoice": list(invoice_ids), "method": method, **form}
    return client.post("/pay", data=data)


def _attempt_id(standin, index=-1):
    return standin.creates()[index].param("client_reference_id")


def _attempt(store, attempt_id):
    with store.begin() as conn:
        return paystore.get_attempt(conn, attempt_id)


def _count(store, table):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp or int(time.time()))


_events = iter(range(1, 10**9))


def _event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_test_{next(_events)}", "object": "event", "type": kind,
            "api_version": stripe.api_version, "livemode": False, "created": int(time.time()),
            "data": {"object": {"livemode": False, **obj}}}


def _send(client, event: dict, **sign):
    payload = json.dumps(event)
    return client.post("/stripe/events", data=payload,
                       headers={"Stripe-Signature": _sign(payload, **sign), "Content-Type": "application/json"})


def _completed(attempt_id, paid=True, intent="pi_1", email="payer@example.com"):
    return _event("checkout.session.completed", {
        "id": "cs_x", "object": "checkout.session", "client_reference_id": attempt_id, "payment_intent": intent,
        "payment_status": "paid" if paid else "unpaid", "customer_details": {"email": email}})


def _intent(kind, attempt_id, intent="pi_1", code=None):
    obj = {"id": intent, "object": "payment_intent", "metadata": {"attempt_id": attempt_id} if attempt_id else {},
           "latest_charge": "ch_1"}
    if code:
        obj["last_payment_error"] = {"code": code, "message": "Declined"}
    return _event(kind, obj)


def _settle(app):
    app.extensions["jobs"].wait()


def _open(store, invoice_id):
    with store.begin() as conn:
        return position.of_invoices(conn, [invoice_id])[invoice_id]


def _invoice_page(settings, customer_id, invoice_id, folder=None) -> str:
    key = Signer(settings).customer_key(customer_id, 1)
    return (Path(folder or settings.build_dir) / "c" / key / "i" / f"{invoice_slug(invoice_id)}.html").read_text()


# --- /pay ----------------------------------------------------------------------------------------------------


def test_pay_creates_the_attempt_and_a_checkout_session_with_the_chosen_method_only(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    chosen = invoices[:2]
    response = _pay(client, built, cid, [i.invoice_id for i in chosen])
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
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.amount, attempt.checkout_session) == (
        "created", sum(i.balance for i in chosen), next(iter(standin.sessions)))
    # Created is not paid: the invoices stay open (an abandoned checkout blocks nothing).
    assert _open(store, chosen[0].invoice_id).open == chosen[0].balance


def test_bank_payment_gets_the_configured_discount_and_only_the_bank_method(tmp_path, store, built, standin):
    settings = built.replace(ach_discount_bps=100)
    with make_app(settings, tmp_path) as app:
        cid, invoices = _usd_customer(store)
        inv = invoices[0]
        assert _pay(app.test_client(), settings, cid, [inv.invoice_id], "us_bank_account").status_code == 303
    [sent] = standin.creates()
    assert sent.param("allowed_payment_method_types[0]") == "us_bank_account"
    assert not any(k.startswith("payment_method_types") for k in sent.keys())
    discount = (inv.balance * 100 + 5000) // 10000
    assert sent.param("line_items[0][price_data][unit_amount]") == str(inv.balance - discount)
    attempt = _attempt(store, sent.param("client_reference_id"))
    assert (attempt.subtotal, attempt.adjustment, attempt.amount) == (inv.balance, -discount, inv.balance - discount)


def test_a_card_fee_is_its_own_line(tmp_path, store, built, standin):
    settings = built.replace(card_fee_bps=250)
    with make_app(settings, tmp_path) as app:
        cid, invoices = _usd_customer(store)
        assert _pay(app.test_client(), settings, cid, [invoices[0].invoice_id]).status_code == 303
    [sent] = standin.creates()
    assert sent.param("line_items[1][price_data][unit_amount]") == str((invoices[0].balance * 250 + 5000) // 10000)
    assert sent.param("line_items[1][price_data][product_data][name]") == "Card processing fee"


def test_an_amount_tampered_in_the_form_is_refused_and_nothing_is_recorded(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    for amount in (f"{inv.balance / 100 + 1:.2f}", "-1", "abc", "0", "1.001"):
        response = _pay(client, built, cid, [inv.invoice_id], **{f"amount-{inv.invoice_id}": amount})
        assert response.status_code == 400, amount
    assert _count(store, paystore.payment_attempts) == 0 and standin.creates() == []


def test_a_part_payment_is_what_the_customer_typed_and_the_rest_stays_open(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    assert _pay(client, built, cid, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1.00"}).status_code == 303
    attempt_id = _attempt_id(standin)
    assert standin.creates()[0].param("line_items[0][price_data][unit_amount]") == "100"
    assert _send(client, _completed(attempt_id)).status_code == 200
    assert _open(store, inv.invoice_id).open == inv.balance - 100


def test_part_payments_can_be_switched_off(tmp_path, store, built, standin):
    settings = built.replace(partial_payments=False)
    with make_app(settings, tmp_path) as app:
        cid, invoices = _usd_customer(store)
        inv = invoices[0]
        response = _pay(app.test_client(), settings, cid, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1.00"})
    assert response.status_code == 400 and b"in full" in response.data
    assert standin.creates() == []


def test_another_customers_invoice_is_refused(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    foreign = _other_invoice(store, cid)
    response = _pay(client, built, cid, [invoices[0].invoice_id, foreign.invoice_id])
    assert response.status_code == 400 and foreign.number.encode() not in response.data
    assert _count(store, paystore.payment_attempts) == 0 and standin.creates() == []


def test_a_forged_page_token_is_a_plain_404(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    response = client.post("/pay", data={"page_token": _token(built, cid)[:-3] + "xyz", "method": "card",
                                         "invoice": invoices[0].invoice_id})
    assert response.status_code == 404 and standin.creates() == []


def test_stripe_down_answers_503_and_the_attempt_never_counts(client, store, built, standin):
    standin.fail_creates = True
    cid, invoices = _usd_customer(store)
    assert _pay(client, built, cid, [invoices[0].invoice_id]).status_code == 503
    with store.begin() as conn:
        [attempt] = paystore.all_attempts(conn)
    assert attempt.status == "expired"


# --- events --------------------------------------------------------------------------------------------------


def test_card_success_marks_paid_rerenders_publishes_and_mails_a_receipt(client, app, store, built, standin, tmp_path):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id])
    attempt_id = _attempt_id(standin)
    assert 'badge-paid' not in _invoice_page(built, cid, inv.invoice_id)
    assert _send(client, _completed(attempt_id)).status_code == 200
    _settle(app)
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.payment_intent, attempt.payer_email) == ("succeeded", "pi_1", "payer@example.com")
    assert _open(store, inv.invoice_id).status == "paid"
    for folder in (built.build_dir, built.target):  # re-rendered, then published
        assert '<span class="badge badge-paid">Paid</span>' in _invoice_page(built, cid, inv.invoice_id, folder)
    [mail] = outbox_messages(tmp_path)
    assert mail["To"] == "payer@example.com" and mail["Subject"].startswith("Payment received")


def test_ach_is_pending_then_paid_and_the_receipt_comes_only_when_it_settles(client, app, store, built, standin,
                                                                            tmp_path):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id], "us_bank_account")
    attempt_id = _attempt_id(standin)
    _send(client, _completed(attempt_id, paid=False))  # ACH completes "unpaid"
    _send(client, _intent("payment_intent.processing", attempt_id))
    _settle(app)
    assert _attempt(store, attempt_id).status == "processing"
    assert _open(store, inv.invoice_id).status == "payment pending"
    assert "Payment pending" in _invoice_page(built, cid, inv.invoice_id)
    [pending] = outbox_messages(tmp_path)
    assert "pending" in pending["Subject"].lower() or "on its way" in pending["Subject"]
    assert "receipt" not in pending.get_body(("plain",)).get_content().lower().replace("not yet a receipt", "")

    _send(client, _event("checkout.session.async_payment_succeeded",
                         {"id": "cs_x", "client_reference_id": attempt_id, "payment_intent": "pi_1"}))
    _send(client, _intent("payment_intent.succeeded", attempt_id))
    _settle(app)
    assert _attempt(store, attempt_id).status == "succeeded"
    assert "Paid" in _invoice_page(built, cid, inv.invoice_id)
    subjects = [m["Subject"] for m in outbox_messages(tmp_path)]
    assert len(subjects) == 2 and subjects.count(pending["Subject"]) == 1
    assert any(s.startswith("Payment received") for s in subjects)


def test_a_failed_ach_reopens_the_invoice_with_the_reason(client, app, store, built, standin, tmp_path):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id], "us_bank_account")
    attempt_id = _attempt_id(standin)
    _send(client, _completed(attempt_id, paid=False))
    _send(client, _intent("payment_intent.processing", attempt_id))
    _send(client, _intent("payment_intent.payment_failed", attempt_id, code="insufficient_funds"))
    _send(client, _event("checkout.session.async_payment_failed",
                         {"id": "cs_x", "client_reference_id": attempt_id}))
    _settle(app)
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.failure_reason) == ("failed", "insufficient funds")
    pos = _open(store, inv.invoice_id)
    assert (pos.open, pos.failure) == (inv.balance, "insufficient funds")
    page = _invoice_page(built, cid, inv.invoice_id)
    assert "did not go through (insufficient funds)" in page and "Payment pending" not in page
    assert [m["Subject"].split(" ·")[0] for m in outbox_messages(tmp_path)] == [
        "Your bank payment is on its way", "Your payment did not go through"]
    # Paying again works: the failed attempt blocks nothing.
    assert _pay(client, built, cid, [inv.invoice_id], "us_bank_account").status_code == 303


def test_a_declined_card_inside_checkout_does_not_fail_the_attempt(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id])
    attempt_id = _attempt_id(standin)
    _send(client, _intent("payment_intent.payment_failed", attempt_id, code="card_declined"))
    assert _attempt(store, attempt_id).status == "created"
    _send(client, _completed(attempt_id))
    assert _attempt(store, attempt_id).status == "succeeded"


def test_the_same_event_five_times_concurrently_has_one_effect(client, app, store, built, standin, tmp_path):
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id])
    attempt_id = _attempt_id(standin)
    event = _completed(attempt_id)
    statuses = []
    barrier = threading.Barrier(5)

    def deliver():
        local = app.test_client()
        barrier.wait()
        statuses.append(_send(local, event).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # A duplicate is a success for Stripe; on SQLite a writer that lost the race may ask for a retry (503).
    assert statuses and all(s in (200, 503) for s in statuses) and statuses.count(200) >= 1
    for _ in range(3):  # Stripe's retries of whatever was answered 503
        assert _send(client, event).status_code == 200
    _settle(app)
    assert _count(store, paystore.stripe_events) == 1
    assert store.count_events(kind="payment_succeeded", customer_id=cid) == 1
    assert len(outbox_messages(tmp_path)) == 1


def test_events_out_of_order_never_move_an_attempt_back(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id], "us_bank_account")
    attempt_id = _attempt_id(standin)
    _send(client, _intent("payment_intent.succeeded", attempt_id))  # before checkout.session.completed
    assert _attempt(store, attempt_id).status == "succeeded"
    _send(client, _intent("payment_intent.processing", attempt_id))
    _send(client, _completed(attempt_id, paid=False, intent="pi_1"))
    _send(client, _event("checkout.session.expired", {"id": "cs_x", "client_reference_id": attempt_id}))
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.payer_email) == ("succeeded", "payer@example.com")
    assert _open(store, invoices[0].invoice_id).status == "paid"


def test_an_event_that_is_not_the_portals_asks_stripe_nothing_and_records_only_its_id(client, store, built, standin):
    # Every PaymentIntent the portal creates carries its attempt id: one without it is another integration's
    # (the old code asked Stripe for it, inside the webhook request).
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id])
    attempt_id = _attempt_id(standin)
    before = len(standin.requests)
    foreign = _intent("payment_intent.succeeded", None, intent="pi_someone_else")
    assert _send(client, foreign).status_code == 200
    refund = _event("charge.refunded", {"id": "ch_someone_else", "object": "charge", "payment_intent": "pi_other",
                                        "amount": 1000, "amount_refunded": 1000, "status": "succeeded"})
    assert _send(client, refund).status_code == 200
    assert len(standin.requests) == before  # no call to Stripe
    assert _attempt(store, attempt_id).status == "created"
    with store.begin() as conn:
        assert paystore.event_seen(conn, foreign["id"]) and paystore.event_seen(conn, refund["id"])


@pytest.mark.parametrize("how", ["bad signature", "stale timestamp", "other secret", "no header"])
def test_an_unverified_event_is_rejected_and_records_nothing(client, store, built, standin, how):
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id])
    event = _completed(_attempt_id(standin))
    payload = json.dumps(event)
    header = {"bad signature": _sign(payload).replace("v1=", "v1=0"),
              "stale timestamp": _sign(payload, timestamp=int(time.time()) - 301),
              "other secret": _sign(payload, secret="whsec_someone_else"), "no header": ""}[how]
    headers = {"Stripe-Signature": header} if header else {}
    response = client.post("/stripe/events", data=payload, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert _count(store, paystore.stripe_events) == 0
    assert _attempt(store, _attempt_id(standin)).status == "created"
    # The same body, re-serialised with other whitespace, does not verify against the original signature.
    resent = client.post("/stripe/events", data=json.dumps(event, indent=1),
                         headers={"Stripe-Signature": _sign(payload), "Content-Type": "application/json"})
    assert resent.status_code == 400


def test_a_refund_reopens_the_invoice_and_flags_the_payment(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id])
    attempt_id = _attempt_id(standin)
    _send(client, _completed(attempt_id))
    _send(client, _event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
                                             "amount": inv.balance, "amount_refunded": 100}))
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.refunded, attempt.needs_review) == ("partially_refunded", 100, True)
    # The part refunded is owed again (portal/balances/position.py: money that went back reopens the invoice).
    part = _open(store, inv.invoice_id)
    assert (part.open, part.status) == (100, "partly paid")
    _send(client, _event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
                                             "amount": inv.balance, "amount_refunded": inv.balance}))
    assert (_attempt(store, attempt_id).status, _attempt(store, attempt_id).refunded) == ("refunded", inv.balance)
    assert _open(store, inv.invoice_id).open == inv.balance


def test_a_chargeback_marks_the_payment_disputed(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id], "us_bank_account")
    attempt_id = _attempt_id(standin)
    _send(client, _completed(attempt_id, paid=False))
    _send(client, _intent("payment_intent.succeeded", attempt_id))
    _send(client, _event("charge.dispute.created", {"id": "dp_1", "object": "dispute", "payment_intent": "pi_1",
                                                    "charge": "ch_1", "reason": "fraudulent",
                                                    "status": "needs_response"}))
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.needs_review, attempt.failure_reason) == ("disputed", True, "disputed: fraudulent")
    assert _open(store, inv.invoice_id).open == inv.balance


@pytest.mark.parametrize(("opening", "outcome", "final"), [
    ("needs_response", "won", "reinstated"), ("needs_response", "lost", "disputed"),
    # An inquiry takes no money (the old test opened it as a chargeback, which Stripe never closes this way).
    ("warning_needs_response", "warning_closed", "succeeded")])
def test_a_closed_chargeback_won_counts_the_payment_again_and_lost_keeps_it_disputed(client, store, built,
                                                                                      standin, opening, outcome, final):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id])
    attempt_id = _attempt_id(standin)
    _send(client, _completed(attempt_id))
    dispute = {"id": "dp_1", "object": "dispute", "payment_intent": "pi_1", "charge": "ch_1", "reason": "fraudulent"}
    opened = _event("charge.dispute.created", {**dispute, "status": opening})
    opened["created"] -= 60
    _send(client, opened)
    held = opening in ("needs_response",)
    assert _open(store, inv.invoice_id).open == (inv.balance if held else 0)
    _send(client, _event("charge.dispute.closed", {**dispute, "status": outcome}))
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.needs_review) == (final, True)  # every dispute, even an inquiry, is reviewed
    if outcome == "lost":
        assert _open(store, inv.invoice_id).open == inv.balance
        return
    assert _open(store, inv.invoice_id).status == "paid"
    assert cash_application(store)[0]["status"] == final  # cash the ERP applies (again)
    # Stripe's retry of the opening event, and an update made before the close delivered after it, cannot
    # charge it back a second time: the newest state of the dispute wins.
    _send(client, opened)
    late = _event("charge.dispute.updated", {**dispute, "status": "under_review" if held else "warning_under_review"})
    late["created"] = opened["created"] + 1
    _send(client, late)
    assert _attempt(store, attempt_id).status == final and _open(store, inv.invoice_id).status == "paid"
    kinds = [e.kind for e in all_events(store) if e.kind.startswith("payment_")]
    assert kinds == (["payment_succeeded", "payment_disputed", "payment_reinstated"] if held else ["payment_succeeded"])


def test_two_tabs_paying_the_same_invoice_leave_unapplied_cash_for_staff(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    inv = invoices[0]
    _pay(client, built, cid, [inv.invoice_id])
    _pay(client, built, cid, [inv.invoice_id])  # the second tab, before the first one paid
    first, second = _attempt_id(standin, 0), _attempt_id(standin, 1)
    _send(client, _completed(first, intent="pi_a"))
    _send(client, _completed(second, intent="pi_b"))
    a, b = _attempt(store, first), _attempt(store, second)
    assert (a.status, a.unapplied, a.needs_review) == ("succeeded", 0, False)
    assert (b.status, b.unapplied, b.needs_review) == ("succeeded", inv.balance, True)
    assert _open(store, inv.invoice_id).open == 0
    # A third tab cannot pay what is already paid.
    assert _pay(client, built, cid, [inv.invoice_id]).status_code == 400
    rows = cash_application(store)
    assert [(r["payment"], r["invoice_id"]) for r in rows] == [(first, inv.invoice_id), (second, "")]
    assert sum(int(r["amount_applied"].replace(".", "")) for r in rows) == 2 * inv.balance


def test_the_database_down_answers_5xx_so_stripe_retries(client, app, store, built, standin, monkeypatch):
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id])
    attempt_id = _attempt_id(standin)
    web_store = app.extensions["portal"].store

    def down(*_args, **_kwargs):
        raise StoreUnavailable("database error (test): OperationalError: connection refused")

    monkeypatch.setattr(web_store, "begin", down)
    event = _completed(attempt_id)
    assert _send(client, event).status_code == 503
    monkeypatch.undo()
    assert _send(client, event).status_code == 200
    assert _attempt(store, attempt_id).status == "succeeded"


def test_a_payment_changes_the_customers_fingerprint(client, app, store, built, standin):
    cid, invoices = _usd_customer(store)
    assert render_site(built, store, built.build_dir).customers_rendered == 0
    before = Manifest.load(Path(built.build_dir)).customers[cid]["fingerprint"]
    _pay(client, built, cid, [invoices[0].invoice_id])
    _send(client, _completed(_attempt_id(standin)))
    _settle(app)  # the webhook re-rendered this customer alone, under its new fingerprint
    after = Manifest.load(Path(built.build_dir)).customers[cid]
    assert after["fingerprint"] != before
    assert render_site(built, store, built.build_dir).customers_rendered == 0  # a full build agrees


def test_success_page_tells_only_what_the_events_said(client, store, built, standin):
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id], "us_bank_account")
    sent = standin.creates()[0]
    success = urlparse(sent.param("success_url"))
    page = client.get(f"{success.path}?{success.query}")
    assert page.status_code == 200 and b"Payment received" not in page.data and b"Waiting for confirmation" in page.data
    # A bank payment completes Checkout "unpaid" whether a debit started or microdeposits are on their way:
    # only the PaymentIntent says which (the old code said "pending" here).
    _send(client, _completed(sent.param("client_reference_id"), paid=False))
    page = client.get(f"{success.path}?{success.query}")
    assert b"Waiting for confirmation" in page.data and b"pending" not in page.data
    _send(client, _intent("payment_intent.processing", sent.param("client_reference_id")))
    page = client.get(f"{success.path}?{success.query}")
    assert b"Bank payment pending" in page.data and "1–4 business days".encode() in page.data
    assert client.get("/pay/done?ref=forged").status_code == 404


def test_the_payment_pages_die_with_a_revocation_expire_and_survive_a_key_rotation(client, store, built, standin,
                                                                                   tmp_path, monkeypatch):
    """The pages Stripe sends the customer back to named the attempt by a reference that never expired and
    outlived `portal revoke`, showing the customer's new page address to whoever held the old one."""
    cid, invoices = _usd_customer(store)
    _pay(client, built, cid, [invoices[0].invoice_id])
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
    cid, invoices = _usd_customer(store)
    chosen = invoices[:2]
    _pay(client, built, cid, [i.invoice_id for i in chosen])
    attempt_id = _attempt_id(standin)
    _send(client, _completed(attempt_id, intent="pi_r"))
    _send(client, _intent("payment_intent.succeeded", attempt_id, intent="pi_r"))
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
    _pay(client, built, cid, [inv.invoice_id], credit=credit.credit_id)
    sent = standin.creates()[-1]
    used = min(credit.balance, inv.balance - 50)
    charged = sum(int(v) for k, v in sent.params if k.endswith("[price_data][unit_amount]"))
    assert charged == inv.balance - used
    attempt_id = sent.param("client_reference_id")
    _send(client, _completed(attempt_id))
    attempt = _attempt(store, attempt_id)
    assert (attempt.status, attempt.amount, attempt.credit_applied, attempt.unapplied) == (
        "succeeded", inv.balance - used, used, 0)
    assert _open(store, inv.invoice_id).open == 0
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
    response = _pay(client, built, data.customer.customer_id, [data.invoices[0].invoice_id],
                    credit=foreign.credit_id)
    assert response.status_code == 400 and standin.creates() == []
