"""Why a payment failed, told in the customer's language: the payment-failed email, the /pay/done page and the
account and invoice pages say Stripe's failure in the words of the one mapping the autopay emails use
(portal.payments.state.customer_reason), translated; a failure Stripe explains only in its own English words is "the
payment was declined", translated. Against the Stripe stand-in's events of a failed bank debit, on SQLite and
PostgreSQL, with a German customer."""

from __future__ import annotations

import pytest

from portal.build.customer import render_customer
from portal.build.pages import PageRenderer, invoice_slug
from portal.core.i18n import translations_for
from portal.core.signing import Signer
from tests.i18n_helpers import english_found, read_html
from tests.payfixtures import (
    attempt_id_sent,
    intent_event,
    load_attempt,
    post_pay,
    send_event,
    session_completed,
    settle,
)
from tests.site_helpers import rewrite_csv
from tests.webhook_helpers import outbox_messages

GERMAN = "C00001"  # a USD customer of the sample, made German here: a bank payment (ACH) is for USD only
GERMAN_TEXT = translations_for("de_DE", "en")


@pytest.fixture
def export_dir(export_dir):
    rewrite_csv(export_dir / "customers.csv",
                lambda row: {**row, "locale": "de_DE"} if row["customer_id"] == GERMAN else row)
    return export_dir


@pytest.mark.parametrize(("code", "english", "stored"), [
    ("insufficient_funds", "insufficient funds", "insufficient funds"),
    ("do_not_honor", "the payment was declined", "Declined"),  # Stripe's own words are kept for the staff only
])
def test_a_failed_payment_is_explained_in_the_customers_language(client, app, built, store, standin, tmp_path, code,
                                                                english, stored):
    data = next(d for d in store.customer_data() if d.customer.customer_id == GERMAN)
    assert (data.customer.locale, data.customer.currency) == ("de_DE", "USD") and data.invoices
    post_pay(client, built, GERMAN, [data.invoices[0].invoice_id], "us_bank_account")
    attempt_id = attempt_id_sent(standin)
    send_event(client, session_completed(attempt_id, paid=False))
    send_event(client, intent_event("payment_intent.processing", attempt_id))  # the debit started, then failed
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

    # The account page's history and the invoice page say it in the same words.
    outputs = {o.path.split("/", 2)[2]: o.data.decode() for o in render_customer(PageRenderer(built), store, GERMAN)
               .outputs if o.path.startswith("c/") and o.path.endswith(".html")}
    _lang, account = read_html(outputs["index.html"])
    _lang, invoice = read_html(outputs[f"i/{invoice_slug(data.invoices[0].invoice_id)}.html"])
    assert german in account and stored not in account.replace(german, "")
    assert GERMAN_TEXT.gettext("Your last payment did not go through (%(reason)s). The invoice is open again.") % {
        "reason": german} in invoice
