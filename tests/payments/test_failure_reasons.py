"""Why a payment failed, told in the customer's language: the payment-failed email and the /pay/done page say
Stripe's failure in the words of the one mapping (portal.payments.state.customer_reason) the autopay emails use,
translated; a failure Stripe explains only in its own English words is "the payment was declined", translated.
Against the Stripe stand-in's events, on SQLite and PostgreSQL, with a German customer (tests/i18n_helpers.py)."""

from __future__ import annotations

import pytest

from portal.core.i18n import translations_for
from portal.core.signing import Signer
from tests.i18n_helpers import english_found, localise_export, read_html
from tests.payfixtures import (
    attempt_id_sent,
    intent_event,
    load_attempt,
    post_pay,
    send_event,
    session_completed,
    settle,
)
from tests.webhook_helpers import outbox_messages

GERMAN = "C00002"
GERMAN_TEXT = translations_for("de_DE", "en")


@pytest.fixture
def export_dir(export_dir):
    localise_export(export_dir)
    return export_dir


@pytest.mark.parametrize(("code", "english", "stored"), [
    ("insufficient_funds", "insufficient funds", "insufficient funds"),
    ("do_not_honor", "the payment was declined", "Declined"),  # Stripe's own words are kept for the staff only
])
def test_a_failed_payment_is_explained_in_the_customers_language(client, app, built, store, standin, tmp_path, code,
                                                                english, stored):
    data = next(d for d in store.customer_data() if d.customer.customer_id == GERMAN)
    assert data.customer.locale == "de_DE" and data.invoices
    post_pay(client, built, GERMAN, [data.invoices[0].invoice_id])
    attempt_id = attempt_id_sent(standin)
    send_event(client, session_completed(attempt_id, paid=False))
    send_event(client, intent_event("payment_intent.payment_failed", attempt_id, code=code))
    settle(app)
    attempt = load_attempt(store, attempt_id)
    assert (attempt.status, attempt.failure_reason) == ("failed", stored)
    german = GERMAN_TEXT.gettext(english)
    assert german != english  # translated, so finding it below proves the translation was used

    [mail] = [m for m in outbox_messages(tmp_path)
              if str(m["Subject"]).startswith(GERMAN_TEXT.gettext("Your payment did not go through · %(company)s")
                                              .split(" ·")[0])]
    plain = mail.get_body(("plain",)).get_content()
    lang, html_text = read_html(mail.get_body(("html",)).get_content())
    assert german in " ".join(plain.split()) and german in html_text and lang == "de"
    assert english_found(plain, "de") == [], plain

    page = client.get(f"/pay/done?ref={Signer(built).pay_ref(attempt_id, 1)}")
    lang, text = read_html(page.get_data(as_text=True))
    assert page.status_code == 200 and lang == "de"
    assert GERMAN_TEXT.gettext("Reason: %(reason)s. Your invoices are open again.") % {"reason": german} in text
    assert english_found(text, "de") == [], text
