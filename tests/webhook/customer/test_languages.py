"""The webhook's pages a customer sees, in the customer's language, and amounts typed in the customer's format.

On SQLite and PostgreSQL, with the sample export given one shipped locale per customer (tests/i18n_helpers.py):
the expired-link page, the unsubscribe pages, the cancelled-payment page and a refused payment are in the
customer's language with a matching `lang`; a German customer's "1,00" pays 1.00 (minor units 100), "1.00" still
works, and a malformed amount is refused in German with an example in the German format.
"""

from __future__ import annotations

import pytest

from portal.core.i18n import translations_for
from portal.store import payments as paystore
from tests.i18n_helpers import LOCALES, english_found, localise_export, read_html
from tests.payfixtures import attempt_id_sent, post_pay, row_count
from tests.webhook_helpers import old_link_token

GERMAN, JAPANESE = "C00002", "C00006"


@pytest.fixture
def export_dir(export_dir):
    localise_export(export_dir)
    return export_dir


def _customer(store, customer_id):
    return next(d for d in store.customer_data() if d.customer.customer_id == customer_id)


def _page(response, language):
    lang, text = read_html(response.get_data(as_text=True))
    assert lang == language
    assert english_found(text, language) == [], text
    return text


@pytest.mark.parametrize("customer_id", [GERMAN, JAPANESE])
def test_the_expired_link_page_is_in_the_customers_language(client, store, built, customer_id):
    data = _customer(store, customer_id)
    assert data.customer.locale == LOCALES[customer_id]
    token = old_link_token(built, customer_id, data.contacts[0].contact_id, "", 1, age_days=built.link_ttl_days + 1)
    response = client.get(f"/l/{token}")
    assert response.status_code == 410
    language = LOCALES[customer_id][:2]
    text = _page(response, language)
    t = translations_for(language)
    assert t.gettext("This link has expired") in text and t.gettext("Email me a fresh link") in text


def test_the_unsubscribe_pages_are_in_the_customers_language(client, store, built):
    from portal.core.signing import Signer

    data = _customer(store, JAPANESE)
    token = Signer(built).page_token("unsubscribe", JAPANESE, 1, data.contacts[0].contact_id)
    asked = client.get(f"/u/{token}")
    assert asked.status_code == 200
    assert "お支払いのお知らせを停止しますか？" in _page(asked, "ja")
    done = client.post(f"/u/{token}")
    assert done.status_code == 200
    assert "お知らせの配信を停止しました" in _page(done, "ja")


def test_a_german_customer_pays_an_amount_typed_the_german_way(client, store, built, standin):
    data = _customer(store, GERMAN)
    inv = next(i for i in data.invoices if i.balance >= 200)
    response = post_pay(client, built, GERMAN, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1,50"})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert standin.creates()[0].param("line_items[0][price_data][unit_amount]") == "150"
    assert attempt_id_sent(standin)
    # The dot form is read as well (what the page pre-fills elsewhere and what people paste).
    response = post_pay(client, built, GERMAN, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1.25"})
    assert response.status_code == 303
    assert standin.creates()[-1].param("line_items[0][price_data][unit_amount]") == "125"


def test_a_malformed_amount_is_refused_in_the_customers_language_and_format(client, store, built, standin):
    data = _customer(store, GERMAN)
    inv = data.invoices[0]
    before = row_count(store, paystore.payment_attempts)
    response = post_pay(client, built, GERMAN, [inv.invoice_id], **{f"amount-{inv.invoice_id}": "1,2,3"})
    assert response.status_code == 400
    text = _page(response, "de")
    assert f"Der Betrag für Rechnung {inv.number} ist ungültig" in text
    assert "1234,50" in text  # the example is written as a German types it
    assert row_count(store, paystore.payment_attempts) == before and standin.creates() == []


def test_the_pay_form_shows_the_amount_in_the_customers_format(built, store):
    """The part-payment field's placeholder is the open amount as the customer types it: "1234,50" in German."""
    from tests.payfixtures import invoice_page

    data = _customer(store, GERMAN)
    inv = next(i for i in data.invoices if i.balance % 100)
    html = invoice_page(built, GERMAN, inv.invoice_id)
    whole, cents = divmod(inv.balance, 100)
    assert f'placeholder="{whole},{cents:02d}"' in html or f'value="{whole},{cents:02d}"' in html
    assert 'data-decimal=","' in html and 'data-group="."' in html


def test_a_refused_dispute_is_explained_in_the_customers_language(client, store, built):
    from portal.core.signing import Signer

    data = _customer(store, GERMAN)
    inv = data.invoices[0]
    response = client.post("/dispute", data={"page_token": Signer(built).page_token("page", GERMAN, 1),
                                             "dispute_invoice": inv.invoice_id, "reason": "pricing", "message": " "})
    assert response.status_code == 400
    text = _page(response, "de")
    assert "Bitte beschreiben Sie das Problem in einer Nachricht." in text
    assert "Diese Beanstandung kann nicht gesendet werden" in text
