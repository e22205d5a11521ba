"""Autopay speaks the customer's language: a German customer's notice and failure emails (subject, plain text and
HTML with lang="de"), the method's name and the failure's reason in German, and the status page after turning autopay
on; the collector's report of the same failure stays English. On SQLite and PostgreSQL, against the Stripe stand-in
and a real SMTP server, with the sample export given one shipped locale per customer (tests/i18n_helpers.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from babel.dates import format_date

from tests.autopay_helpers import at, enrol, latest_due, run, turn_on
from tests.i18n_helpers import LOCALES, english_found, localise_export, read_html
from tests.smtpserver import running_smtp
from tests.stripe_standin_setup import DECLINED_CARD

GERMAN = "C00002"


@pytest.fixture
def export_dir(export_dir):
    localise_export(export_dir)
    return export_dir


@pytest.fixture
def smtp():
    yield from running_smtp()


def _enrolled(client, standin, built, store, number=""):
    """The German customer with a card and autopay on (its status page checked): (invoice id, number, due date)."""
    data = next(d for d in store.customer_data() if d.customer.customer_id == GERMAN)
    assert data.customer.locale == LOCALES[GERMAN] == "de_DE"
    method_id = enrol(client, standin, built, GERMAN, "card", number)
    answer = turn_on(client, built, GERMAN, method_id)
    assert answer.status_code == 200
    lang, text = read_html(answer.get_data(as_text=True))
    assert lang == "de" and "Die automatische Zahlung ist aktiviert" in text
    assert english_found(text, "de") == [], text
    invoice_id, due_date = latest_due(store, GERMAN, data.invoices)
    return invoice_id, next(i.number for i in data.invoices if i.invoice_id == invoice_id), due_date


def _subject(message) -> str:
    # Whitespace normalised: unfolding a long header with encoded words may leave a double space.
    return " ".join(str(message["Subject"]).split())


def _german(message):
    plain = message.get_body(("plain",)).get_content()
    lang, html_text = read_html(message.get_body(("html",)).get_content())
    assert lang == "de"
    assert english_found(plain, "de") == [], plain
    assert english_found(html_text, "de") == [], html_text
    return plain, html_text


def test_a_german_customers_autopay_notice_is_in_german(client, standin, built, store, smtp):
    settings = built.replace(mail_url=smtp.url, mail_retry_delay_ms=0)
    _invoice_id, number, due_date = _enrolled(client, standin, built, store)
    result = run(settings, store, at(due_date - timedelta(days=3)))
    assert result.ok, result.summary()
    notices = [m for m in smtp.messages if number in str(m["Subject"])]
    assert len(notices) >= 1
    day = format_date(due_date, "long", locale="de_DE")
    assert _subject(notices[0]) == f"Automatische Zahlung der Rechnung {number} am {day} · {built.company_name}"
    plain, html_text = _german(notices[0])
    for text in (plain, html_text):
        assert "Wie von Ihnen gewünscht, buchen wir am" in text and "per Karte mit der Endung 4242" in text
        assert day in text


def test_a_german_customers_failed_debit_is_explained_in_german_and_reported_in_english(
        client, standin, built, store, smtp):
    settings = built.replace(mail_url=smtp.url, mail_retry_delay_ms=0, autopay_retries=0)
    _invoice_id, number, due_date = _enrolled(client, standin, built, store, DECLINED_CARD)
    run(settings, store, at(due_date - timedelta(days=3)))
    run(settings, store, at(due_date))
    failed = [m for m in smtp.messages if _subject(m) ==
              f"Die automatische Zahlung der Rechnung {number} ist nicht durchgegangen · {built.company_name}"]
    assert failed, [_subject(m) for m in smtp.messages]
    plain, _html_text = _german(failed[0])
    # The stand-in declines with `insufficient_funds`: the reason is said in German, and so is the method.
    assert "per Karte mit der Endung 9995 ist nicht durchgegangen: unzureichende Kontodeckung." in plain
    report = next(m for m in smtp.messages if str(m["Subject"]).startswith("Autopay failed for good"))
    assert "last failure: insufficient funds" in report.get_body(("plain",)).get_content()
    assert read_html(report.get_body(("html",)).get_content())[0] == "en"
