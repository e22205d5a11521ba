"""portal.payments.start without the webhook: what may be paid is decided in one domain function, the dispute
hold included (it used to be a hook the dispute views installed on /pay, invisible from the payment code)."""

from __future__ import annotations

import pytest

from portal.disputes.service import submit_dispute
from portal.payments.pricing import PaymentRefused
from portal.payments.start import start_payment
from portal.store import payments as paystore
from tests.payfixtures import load_attempt, row_count, usd_customer
from tests.webhook_helpers import import_sample


def _major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


@pytest.fixture
def sample(store, settings, export_dir):
    import_sample(store, settings, export_dir)
    return usd_customer(store)


def test_a_partly_disputed_invoice_is_paid_only_by_an_amount_typed_within_what_is_due(store, settings, sample):
    customer_id, invoices = sample
    inv = invoices[0]
    submit_dispute(store, settings, customer_id, [inv.invoice_id], {inv.invoice_id: _major(inv.balance - 100)},
                   "pricing", "Wrong unit price")
    with pytest.raises(PaymentRefused, match=rf"Part of invoice {inv.number} is in dispute: enter an amount of at "
                                             r"most \$1\.00\."):
        start_payment(store, settings, customer_id, [inv.invoice_id], {}, [], "card")
    with pytest.raises(PaymentRefused, match=r"at most \$1\.00 can be paid now\."):
        start_payment(store, settings, customer_id, [inv.invoice_id], {inv.invoice_id: "1.01"}, [], "card")
    assert row_count(store, paystore.payment_attempts) == 0  # a refusal records nothing
    started = start_payment(store, settings, customer_id, [inv.invoice_id], {inv.invoice_id: "1.00"}, [], "card")
    assert (started.quote.subtotal, started.quote.total) == (100, 100)
    attempt = load_attempt(store, started.attempt_id)
    assert (attempt.status, attempt.customer_id, attempt.amount) == ("created", customer_id, 100)


def test_an_invoice_disputed_in_full_is_refused_before_the_rest_of_the_form_is_read(store, settings, sample):
    customer_id, invoices = sample
    inv = invoices[0]
    submit_dispute(store, settings, customer_id, [inv.invoice_id], {inv.invoice_id: ""}, "pricing", "Wrong")
    # Even with no method chosen and a malformed amount: the hold is what the customer is told about.
    with pytest.raises(PaymentRefused, match=f"Invoice {inv.number} is in dispute in full: it can be paid once "
                                             "the dispute is resolved."):
        start_payment(store, settings, customer_id, [inv.invoice_id], {inv.invoice_id: "abc"}, [], "")
    other = invoices[1]  # the hold is per invoice: the customer's other invoices can be paid
    started = start_payment(store, settings, customer_id, [other.invoice_id], {}, [], "card")
    assert started.quote.total == other.balance
    assert row_count(store, paystore.payment_attempts) == 1


def test_another_customers_invoice_is_refused_in_words_that_reveal_nothing(store, settings, sample):
    customer_id, invoices = sample
    foreign = next(i for d in store.customer_data() if d.customer.customer_id != customer_id for i in d.invoices)
    for chosen in ([foreign.invoice_id], [invoices[0].invoice_id, "no-such-invoice"]):
        with pytest.raises(PaymentRefused, match="^One of the chosen invoices is not on your account.$"):
            start_payment(store, settings, customer_id, chosen, {}, [], "card")
    assert row_count(store, paystore.payment_attempts) == 0
