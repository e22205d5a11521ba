"""Saved methods and `portal autopay` end to end, against the Stripe stand-in and a real SMTP server, on SQLite and
PostgreSQL: a card and a bank account are saved through Checkout in setup mode, autopay notices first and debits on
the due date for the amount the balances rule says, failures are mailed and retried, then reported; removing a
method stops autopay."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.balances import rule
from portal.collect.access import Actor
from portal.collect.holds import place_hold
from portal.collect.promises import Offer, promise_from_customer
from portal.store import autopay as apstore
from tests.autopay_helpers import (
    askable,
    at,
    charges,
    deliver,
    enrol,
    intents_created,
    latest_due,
    run,
    turn_on,
)
from tests.dispute_helpers import post_dispute
from tests.payfixtures import load_attempt, page_token, position_now, usd_customer
from tests.smtpserver import running_smtp
from tests.stripe_standin_setup import AUTH_REQUIRED_CARD, DECLINED_CARD


@pytest.fixture
def smtp():
    yield from running_smtp()


@pytest.fixture
def mail_settings(built, smtp):
    return built.replace(mail_url=smtp.url, mail_retry_delay_ms=0)


def _subjects(smtp):
    return [str(m["Subject"]) for m in smtp.messages]


def test_card_saved_then_autopay_notices_first_and_debits_the_due_amount_on_the_due_date(
        client, standin, built, mail_settings, store, smtp):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    with store.begin() as conn:
        saved = apstore.methods_of(conn, customer_id)
    assert [(m.method_id, m.kind, m.last4, m.ready) for m in saved] == [(method_id, "card", "4242", True)]
    assert standin.requests[0].path == "/v1/customers"  # one Stripe Customer, created first
    setup = next(r for r in standin.creates() if r.param("mode") == "setup")
    assert setup.param("customer") and setup.param("allowed_payment_method_types[0]") == "card"
    assert turn_on(client, built, customer_id, method_id).status_code == 200

    invoice_id, due_date = latest_due(store, customer_id, invoices)
    expected = askable(store, customer_id)[invoice_id].due
    early = run(mail_settings, store, at(due_date - timedelta(days=3)))
    assert early.ok, early.summary()
    assert not intents_created(standin), "nothing is debited before the notice period is over"
    number = next(i.number for i in invoices if i.invoice_id == invoice_id)
    notice = next(m for m in smtp.messages if f"Automatic payment of invoice {number} " in str(m["Subject"]))
    assert charges(store, customer_id)[invoice_id].state == "noticed"
    assert "4242" in notice.get_body(("plain",)).get_content()
    run(mail_settings, store, at(due_date - timedelta(days=1), 23))  # the notice period is not over yet
    assert not intents_created(standin)

    done = run(mail_settings, store, at(due_date))
    assert done.ok, done.summary()
    sent = [r for r in intents_created(standin) if r.param("metadata[invoice_id]") == invoice_id]
    assert len(sent) == 1
    request = sent[0]
    assert request.param("amount") == str(expected)
    assert request.param("off_session") == "true" and request.param("confirm") == "true"
    assert request.headers["idempotency-key"] == f"autopay-{request.param('metadata[attempt_id]')}"
    assert "payment_method_types[0]" not in request.keys()
    assert load_attempt(store, request.param("metadata[attempt_id]")).status == "succeeded"
    assert position_now(store, invoice_id).status == rule.PAID
    assert charges(store, customer_id)[invoice_id].state == "charged"

    again = run(mail_settings, store, at(due_date + timedelta(days=1)))
    assert again.ok
    assert len([r for r in intents_created(standin) if r.param("metadata[invoice_id]") == invoice_id]) == 1


def test_bank_account_debit_is_pending_and_a_return_is_retried_with_an_email(
        client, standin, built, mail_settings, store, smtp):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "us_bank_account")
    setup = next(r for r in standin.creates() if r.param("mode") == "setup")
    assert setup.param("payment_method_options[us_bank_account][verification_method]") == "instant"
    assert turn_on(client, built, customer_id, method_id).status_code == 200
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    run(mail_settings, store, at(due_date - timedelta(days=3)))
    run(mail_settings, store, at(due_date))
    request = next(r for r in intents_created(standin) if r.param("metadata[invoice_id]") == invoice_id)
    with store.begin() as conn:
        assert request.param("mandate") == apstore.method(conn, method_id).mandate != ""
    assert position_now(store, invoice_id).status == rule.PAYMENT_PENDING

    intent_id = load_attempt(store, request.param("metadata[attempt_id]")).payment_intent
    assert deliver(client, standin, *standin.intent_settled(intent_id, failure="insufficient_funds")).status_code \
        == 200
    assert position_now(store, invoice_id).status != rule.PAYMENT_PENDING
    before = len(smtp.messages)
    result = run(mail_settings, store, at(due_date, 12))
    assert charges(store, customer_id)[invoice_id].state == "failed", result.summary()
    failure_mail = [m for m in smtp.messages[before:] if "did not go through" in str(m["Subject"])]
    assert failure_mail and "insufficient funds" in failure_mail[0].get_body(("plain",)).get_content()


def test_card_that_needs_authentication_emails_the_customer_a_link_and_is_not_retried(
        client, standin, built, mail_settings, store, smtp):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card", AUTH_REQUIRED_CARD)
    turn_on(client, built, customer_id, method_id)
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    run(mail_settings, store, at(due_date - timedelta(days=3)))
    result = run(mail_settings, store, at(due_date))
    assert charges(store, customer_id)[invoice_id].state == "needs_customer", result.summary()
    action = [m for m in smtp.messages if "Please confirm the payment" in str(m["Subject"])]
    assert action
    assert f"{built.effective_webhook_url}/l/" in action[0].get_body(("plain",)).get_content()
    attempt_id = next(r for r in intents_created(standin)
                      if r.param("metadata[invoice_id]") == invoice_id).param("metadata[attempt_id]")
    assert load_attempt(store, attempt_id).status == "failed"
    assert position_now(store, invoice_id).status in rule.ASKABLE  # still owed: nothing was taken
    tries = len(intents_created(standin))
    run(mail_settings, store, at(due_date + timedelta(days=10)))
    assert len(intents_created(standin)) == tries


def test_declined_debit_is_retried_then_reported_to_the_collector(client, standin, built, mail_settings, store, smtp):
    settings = mail_settings.replace(autopay_retries=1, autopay_retry_days=2)
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card", DECLINED_CARD)
    turn_on(client, built, customer_id, method_id)
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    run(settings, store, at(due_date - timedelta(days=3)))
    run(settings, store, at(due_date))
    assert charges(store, customer_id)[invoice_id].state == "failed"
    run(settings, store, at(due_date + timedelta(days=1)))  # too early for the retry
    assert charges(store, customer_id)[invoice_id].tries == 1
    run(settings, store, at(due_date + timedelta(days=2)))
    row = charges(store, customer_id)[invoice_id]
    assert (row.state, row.tries) == ("reported", 2)
    assert any("Autopay failed for good" in s for s in _subjects(smtp))
    tried = [r for r in intents_created(standin) if r.param("metadata[invoice_id]") == invoice_id]
    assert len(tried) == 2 and len({r.headers["idempotency-key"] for r in tried}) == 2


def test_removing_the_method_detaches_it_and_stops_autopay(client, standin, built, mail_settings, store, smtp):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    turn_on(client, built, customer_id, method_id)
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    run(mail_settings, store, at(due_date - timedelta(days=3)))
    answer = client.post("/methods/remove", data={"page_token": page_token(built, customer_id), "method": method_id})
    assert answer.status_code == 200
    assert standin.payment_methods[method_id]["customer"] is None  # detached at Stripe
    with store.begin() as conn:
        assert apstore.methods_of(conn, customer_id) == []
        assert apstore.choice(conn, customer_id).enabled is False
    run(mail_settings, store, at(due_date))
    assert intents_created(standin) == []
    # Stripe's own event about it later changes nothing more, and is idempotent.
    assert deliver(client, standin, *standin.detached_event(method_id)).status_code == 200


def test_invoice_in_dispute_is_never_debited(client, standin, built, mail_settings, store):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    turn_on(client, built, customer_id, method_id)
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    # A dispute of part of the invoice: the rest is still owed, and still not debited while the dispute is open.
    assert post_dispute(client, built, customer_id, [invoice_id], **{f"dispute_amount-{invoice_id}": "1.00"}
                        ).status_code < 400
    held = position_now(store, invoice_id)
    assert held.disputed == 100 and held.due > 100
    run(mail_settings, store, at(due_date - timedelta(days=3)))
    run(mail_settings, store, at(due_date))
    assert [r for r in intents_created(standin) if r.param("metadata[invoice_id]") == invoice_id] == []


def _debits_of(standin, invoice_ids) -> list:
    return [r for r in intents_created(standin) if r.param("metadata[invoice_id]") in set(invoice_ids)]


def test_customer_on_hold_is_never_debited_even_after_the_notice(client, standin, built, mail_settings, store):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    turn_on(client, built, customer_id, method_id)
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    run(mail_settings, store, at(due_date - timedelta(days=3)))
    assert charges(store, customer_id)[invoice_id].state == "noticed"
    # The collector puts the customer on hold after the notice went: the hold wins, for every invoice.
    place_hold(store, Actor("collector@example.com", "collector"), customer_id, "talking to their CFO",
               due_date + timedelta(days=2), now=at(due_date - timedelta(days=1)))
    run(mail_settings, store, at(due_date))
    run(mail_settings, store, at(due_date + timedelta(days=1)))
    assert _debits_of(standin, [i.invoice_id for i in invoices]) == []
    assert charges(store, customer_id)[invoice_id].state == "noticed"


def test_promised_invoice_is_never_debited_before_its_promised_day(client, standin, built, mail_settings, store):
    customer_id, invoices = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    turn_on(client, built, customer_id, method_id)
    invoice_id, due_date = latest_due(store, customer_id, invoices)
    run(mail_settings, store, at(due_date - timedelta(days=3)))
    due = askable(store, customer_id)[invoice_id].due
    # The customer promises on their page to pay the whole invoice a week after its due date.
    offer = Offer((invoice_id,), f"{due // 100}.{due % 100:02d}", (due_date + timedelta(days=7)).isoformat())
    promise_from_customer(store, mail_settings, customer_id, offer, now=at(due_date - timedelta(days=1)))
    run(mail_settings, store, at(due_date))
    run(mail_settings, store, at(due_date + timedelta(days=3)))
    assert _debits_of(standin, [invoice_id]) == []


@pytest.mark.parametrize("doc", ["docs/autopay.md", "infra/README.md"])
def test_the_documented_setup_events_are_the_ones_the_code_handles(doc):
    import re
    from pathlib import Path

    from portal.payments.methods import SETUP_EVENTS

    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    section = text[text.index("<!-- stripe-setup-events -->"):text.index("<!-- /stripe-setup-events -->")]
    assert set(re.findall(r"`((?:setup_intent|payment_method)\.[a-z_]+)`", section)) == SETUP_EVENTS
