"""Stripe as its published API describes it, through /pay and /stripe/events on SQLite and PostgreSQL:
events out of order, disputes matched by charge, the mode of an event, microdeposits, Checkout's 100 line
items, per-currency minimum charges and Stripe's units, failure codes, and the documented event lists."""

from __future__ import annotations

import csv
import json
import re
import threading
import typing
from pathlib import Path
from urllib.parse import urlparse

import pytest
from stripe._payment_intent import PaymentIntent

from portal.build.pipeline import build
from portal.payments.state import FAILURE_TEXT, HANDLED_EVENTS
from portal.store import payments as paystore
from tests.conftest import AS_OF
from tests.payfixtures import attempt_id_sent, load_attempt, position_now, post_pay, row_count, send_event
from tests.webhook_helpers import make_app, outbox_messages

ROOT = Path(__file__).resolve().parents[2]


def _usd(store, count=1):
    for data in store.customer_data():
        if data.customer.currency == "USD" and len(data.invoices) >= count:
            return data.customer.customer_id, data.invoices
    raise AssertionError("no USD customer")


def _paid_by_card(client, built, store, standin):
    cid, invoices = _usd(store)
    inv = invoices[0]
    assert post_pay(client, built, cid, [inv.invoice_id]).status_code == 303
    session = standin.session_for(attempt_id_sent(standin))
    return inv, session


# --- out of order --------------------------------------------------------------------------------------------


def test_a_refund_delivered_before_the_payment_succeeded_is_not_lost(client, app, store, built, standin):
    inv, session = _paid_by_card(client, built, store, standin)
    refund = standin.event("charge.refunded", standin.charge(session, refunded=session["amount_total"]))
    completed = standin.event("checkout.session.completed", standin.session_object(session, payment_status="paid"))
    succeeded = standin.event("payment_intent.succeeded", standin.intent(session, "succeeded"))
    for event in (refund, completed, succeeded):
        assert send_event(client, event).status_code == 200
    attempt = load_attempt(store, session["client_reference_id"])
    assert (attempt.status, attempt.refunded, attempt.needs_review) == ("refunded", inv.balance, True)
    assert position_now(store, inv.invoice_id).open == inv.balance  # the money went back: the invoice is open again


def test_a_dispute_delivered_before_the_payment_succeeded_holds_the_invoice(client, store, built, standin):
    inv, session = _paid_by_card(client, built, store, standin)
    # No attempt id anywhere in a dispute: it waits for an event that names its PaymentIntent.
    assert send_event(client, standin.event("charge.dispute.created", standin.dispute(session, "needs_response"))
                      ).status_code == 200
    assert load_attempt(store, session["client_reference_id"]).status == "created"
    send_event(client, standin.event("checkout.session.completed",
                                     standin.session_object(session, payment_status="paid")))
    attempt = load_attempt(store, session["client_reference_id"])
    assert (attempt.status, attempt.failure_reason) == ("disputed", "disputed: fraudulent")
    assert position_now(store, inv.invoice_id).open == inv.balance


def test_a_dispute_without_a_payment_intent_is_matched_by_its_charge(client, store, built, standin):
    inv, session = _paid_by_card(client, built, store, standin)
    send_event(client, standin.event("payment_intent.succeeded", standin.intent(session, "succeeded")))
    attempt = load_attempt(store, session["client_reference_id"])
    assert attempt.status == "succeeded" and attempt.charge == f"ch_test_{session['id'].rsplit('_', 1)[-1]}"
    dispute = standin.dispute(session, "needs_response", with_intent=False)
    assert dispute["payment_intent"] is None
    send_event(client, standin.event("charge.dispute.created", dispute))
    assert load_attempt(store, session["client_reference_id"]).status == "disputed"
    closed = standin.event("charge.dispute.closed", {**dispute, "status": "won"})
    closed["created"] += 5
    send_event(client, closed)
    assert load_attempt(store, session["client_reference_id"]).status == "reinstated"
    assert position_now(store, inv.invoice_id).status == "paid"


# --- whose and which mode ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sk_test_standin", "sk_live_standin", "rk_live_standin"])
def test_an_event_of_the_other_mode_is_refused_and_records_nothing(tmp_path, store, built, standin, key):
    settings = built.replace(stripe_secret_key=key)
    live = "_live_" in key
    with make_app(settings, tmp_path) as app:
        client = app.test_client()
        cid, invoices = _usd(store)
        post_pay(client, settings, cid, [invoices[0].invoice_id])
        session = standin.session_for(attempt_id_sent(standin))
        wrong = standin.event("checkout.session.completed", standin.session_object(session, payment_status="paid"),
                              livemode=not live)
        response = send_event(client, wrong)
        # Not 2xx: Stripe redelivers it (for up to three days) once the key matches the endpoint.
        assert response.status_code == 400 and "live/test" in response.get_json()["error"]
        assert row_count(store, paystore.stripe_events) == 0
        assert load_attempt(store, session["client_reference_id"]).status == "created"
        right = standin.event("checkout.session.completed", standin.session_object(session, payment_status="paid"),
                              livemode=live)
        assert send_event(client, right).status_code == 200
        assert load_attempt(store, session["client_reference_id"]).status == "succeeded"
        app.extensions["jobs"].wait()


# --- ACH microdeposits ---------------------------------------------------------------------------------------


def test_microdeposits_wait_as_verifying_not_pending_and_time_out_after_ten_days(client, app, store, built, standin,
                                                                                  tmp_path):
    cid, invoices = _usd(store)
    inv = invoices[0]
    post_pay(client, built, cid, [inv.invoice_id], "us_bank_account")
    sent = standin.creates()[-1]
    assert sent.param("payment_method_options[us_bank_account][verification_method]") == "automatic"
    session = standin.session_for(sent.param("client_reference_id"))
    attempt_id = session["client_reference_id"]
    send_event(client, standin.event("checkout.session.completed", standin.session_object(session)))
    intent = standin.intent(session, "requires_action", microdeposits=True)
    send_event(client, standin.event("payment_intent.requires_action", intent))
    app.extensions["jobs"].wait()
    assert load_attempt(store, attempt_id).status == "verifying"
    position = position_now(store, inv.invoice_id)
    assert (position.open, position.pending, position.status) == (inv.balance, 0, "open")  # no debit exists
    success = urlparse(sent.param("success_url"))
    page = client.get(f"{success.path}?{success.query}").get_data(as_text=True)
    link = intent["next_action"]["verify_with_microdeposits"]["hosted_verification_url"]
    assert "Verify your bank account" in page and link in page and "pending" not in page
    [mail] = outbox_messages(tmp_path)
    assert mail["Subject"].startswith("Please verify your bank account") and link in mail.get_body(
        ("plain",)).get_content()

    # Ten days without verification: Stripe fails the PaymentIntent, then the session.
    timeout = standin.intent(session, "requires_payment_method",
                             error_code="payment_method_microdeposit_verification_timeout")
    send_event(client, standin.event("payment_intent.payment_failed", timeout))
    send_event(client, standin.event("checkout.session.async_payment_failed", standin.session_object(session)))
    app.extensions["jobs"].wait()
    attempt = load_attempt(store, attempt_id)
    assert (attempt.status, attempt.failure_reason) == ("failed", "the bank account was not verified within 10 days")
    subjects = [m["Subject"].split(" ·")[0] for m in outbox_messages(tmp_path)]
    assert subjects == ["Please verify your bank account to finish your payment", "Your payment did not go through"]


# --- what Checkout takes -------------------------------------------------------------------------------------


def _write_export(folder: Path) -> Path:
    """One USD customer with 100 open invoices of $10.00 and one of $0.30; one HUF customer."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, rows: list[dict]) -> None:
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write("customers.csv", [{"customer_id": "U1", "name": "Many Invoices Inc", "currency": "USD", "locale": "en_US"},
                            {"customer_id": "H1", "name": "Forint Kft", "currency": "HUF", "locale": "hu_HU"}])
    write("contacts.csv", [{"customer_id": c, "email": f"ap@{c.lower()}.example"} for c in ("U1", "H1")])
    invoice = {"issue_date": "2026-10-01", "due_date": "2026-10-31"}
    rows = [{"invoice_id": f"U{n:03d}", "customer_id": "U1", "number": f"N-{n:03d}", **invoice, "amount": "10.00",
             "balance": "10.00"} for n in range(1, 101)]
    rows.append({"invoice_id": "U999", "customer_id": "U1", "number": "N-999", **invoice, "amount": "0.30",
                 "balance": "0.30"})
    rows += [{"invoice_id": "H001", "customer_id": "H1", "number": "F-1", **invoice, "amount": "12500",
              "balance": "12500"},
             {"invoice_id": "H002", "customer_id": "H1", "number": "F-2", **invoice, "amount": "150", "balance": "150"}]
    write("invoices.csv", rows)
    (folder / "export.json").write_text(json.dumps({"as_of": AS_OF.isoformat().replace("+00:00", "Z")}))
    return folder


@pytest.fixture
def wide(pay_settings, store, tmp_path):
    settings = pay_settings.replace(card_fee_bps=100)
    build(_write_export(tmp_path / "wide"), settings.build_dir, settings, store, workers=1)
    with make_app(settings, tmp_path) as app:
        yield settings, app.test_client()
        app.extensions["jobs"].wait()


def test_a_hundred_invoices_and_a_card_fee_fit_in_checkouts_hundred_line_items(wide, store, standin):
    settings, client = wide
    chosen = [f"U{n:03d}" for n in range(1, 101)]
    response = post_pay(client, settings, "U1", chosen)
    assert response.status_code == 303, response.get_data(as_text=True)
    sent = standin.creates()[-1]
    items = sorted({int(k.split("[")[1].rstrip("]")) for k, _ in sent.params if k.startswith("line_items[")})
    assert items == list(range(100))
    amounts = [int(sent.param(f"line_items[{i}][price_data][unit_amount]")) for i in items]
    assert sent.param("line_items[99][price_data][product_data][name]") == "Card processing fee"
    assert sent.param("line_items[98][price_data][product_data][name]").startswith("Invoices N-099, N-100 (2 ")
    assert amounts[:98] == [1000] * 98 and amounts[98] == 2000 and amounts[99] == 1000  # 1% of $1,000.00
    attempt = load_attempt(store, sent.param("client_reference_id"))
    assert attempt.amount == sum(amounts) == 101_000
    with store.begin() as conn:  # every invoice keeps its own allocation
        assert len(paystore.allocations_of(conn, attempt.attempt_id)) == 100


@pytest.mark.parametrize(("customer", "invoice", "amount"), [("U1", "U001", "0.49"), ("U1", "U999", ""),
                                                             ("H1", "H001", "170")])
def test_a_payment_below_stripes_minimum_is_refused_on_the_form(wide, store, standin, customer, invoice, amount):
    settings, client = wide
    form = {f"amount-{invoice}": amount} if amount else {}
    response = post_pay(client, settings, customer, [invoice], **form)
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and "smallest amount our payment provider accepts" in text
    assert ("$0.50" if customer == "U1" else "175") in text
    assert standin.creates() == [] and row_count(store, paystore.payment_attempts) == 0


def test_forints_go_to_stripe_in_its_two_decimal_unit(wide, store, standin):
    settings, client = wide
    assert post_pay(client, settings, "H1", ["H001"], **{"amount-H001": "1000"}).status_code == 303
    sent = standin.creates()[-1]
    assert sent.param("line_items[0][price_data][currency]") == "huf"
    assert sent.param("line_items[0][price_data][unit_amount]") == "100000"  # 1,000 Ft, as Stripe reads HUF
    assert sent.param("line_items[1][price_data][unit_amount]") == "1000"  # the 1% card fee: 10 Ft
    attempt = load_attempt(store, sent.param("client_reference_id"))
    assert attempt.amount == 1010  # our minor units: whole forints
    session = standin.session_for(attempt.attempt_id)
    send_event(client, standin.event("checkout.session.completed",
                                     standin.session_object(session, payment_status="paid")))
    send_event(client, standin.event("charge.refunded", standin.charge(session, refunded=25_000)))  # 250 Ft back
    assert (load_attempt(store, attempt.attempt_id).status, load_attempt(store, attempt.attempt_id).refunded) == (
                "partially_refunded", 250)


# --- Stripe's own lists --------------------------------------------------------------------------------------


def _literal_values(annotation) -> set[str]:
    values: set[str] = set()
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            values |= set(typing.get_args(arg))
        else:
            values |= _literal_values(arg)
    return values


def test_every_failure_code_is_one_stripe_python_knows():
    codes = _literal_values(PaymentIntent.LastPaymentError.__annotations__["code"])
    assert len(codes) > 100 and "account_number_invalid" in codes  # the SDK's list was read
    assert set(FAILURE_TEXT) <= codes, set(FAILURE_TEXT) - codes
    assert "payment_method_microdeposit_verification_timeout" in FAILURE_TEXT


def _documented_events(text: str) -> set[str]:
    return set(re.findall(r"`((?:checkout\.session|payment_intent|charge(?:\.dispute)?)\.[a-z_]+)`", text))


@pytest.mark.parametrize("doc", ["docs/payments.md", "infra/README.md"])
def test_the_documented_stripe_events_are_the_ones_the_code_handles(doc):
    text = (ROOT / doc).read_text()
    section = text[text.index("<!-- stripe-events -->"):text.index("<!-- /stripe-events -->")]
    assert _documented_events(section) == HANDLED_EVENTS


def test_a_dispute_and_the_success_delivered_at_once_always_meet(client, app, store, built, standin):
    # The dispute may find no attempt yet (an orphan) while the success names its charge: each waits for the
    # other's commit on the ids they share, so the orphan is never left behind (PostgreSQL; SQLite has one writer).
    cid, invoices = _usd(store)
    for _ in range(8):
        assert post_pay(client, built, cid, [invoices[0].invoice_id]).status_code == 303
        session = standin.session_for(attempt_id_sent(standin))
        events = [standin.event("charge.dispute.created", standin.dispute(session, "needs_response",
                                                                          with_intent=False)),
                  standin.event("payment_intent.succeeded", standin.intent(session, "succeeded"))]
        barrier = threading.Barrier(2)

        def deliver(event, barrier=barrier):
            local = app.test_client()
            barrier.wait()
            for _attempt_no in range(20):  # Stripe retries what was answered 5xx (SQLite: the writer was busy)
                if send_event(local, event).status_code == 200:
                    return

        threads = [threading.Thread(target=deliver, args=(e,)) for e in events]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert load_attempt(store, session["client_reference_id"]).status == "disputed"


def test_the_stripe_alarm_watches_for_events_of_the_other_mode():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # CloudFormation's short tags
    template = yaml.load((ROOT / "infra/template.yaml").read_text(), Loader=Loader)
    pattern = template["Resources"]["StripeFailureMetricFilter"]["Properties"]["FilterPattern"]
    assert '$.event = "stripe_livemode_mismatch"' in pattern  # the line the webhook logs (webhook/customer/payments.py)
