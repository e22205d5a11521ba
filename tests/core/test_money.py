"""Money formatting: the per-(currency, locale) fast formatter is Babel's output, or Babel itself."""

from __future__ import annotations

import random

import pytest
from babel.numbers import format_currency

from portal.core import money
from portal.core.money import format_money, to_decimal

LOCALES = ("en_US", "de_DE", "fr_FR", "de_CH", "nl_NL", "hi_IN", "ja_JP", "ar_EG", "sv_SE", "pt_BR", "he_IL")
CURRENCIES = ("USD", "EUR", "JPY", "BHD", "INR", "CHF", "GBP")


@pytest.mark.parametrize("locale", LOCALES)
def test_format_money_is_exactly_babels(locale):
    rng = random.Random(locale)
    amounts = [0, 1, -1, 5, 100, -100, 123450, -123450, 10**13 + 7,
               *(rng.randrange(-10**12, 10**12) for _ in range(200))]
    for currency in CURRENCIES:
        for minor in amounts:
            expected = format_currency(to_decimal(minor, currency), currency, locale=locale)
            assert format_money(minor, currency, locale) == expected, (minor, currency, locale)


def test_an_unusual_pattern_falls_back_to_babel(monkeypatch):
    def refuse(currency, babel_locale):
        raise ValueError("a pattern this formatter does not handle")

    money._money_formatter.cache_clear()
    monkeypatch.setattr(money, "_fast_formatter", refuse)
    try:
        assert format_money(123450, "EUR", "de_DE") == "1.234,50\xa0€"
        assert money._money_formatter("EUR", "de_DE").__name__ == "babel"
    finally:
        money._money_formatter.cache_clear()


@pytest.mark.parametrize(("text", "currency", "locale", "minor"), [
    ("500,50", "EUR", "de_DE", 50050), ("1.234,50", "EUR", "de_DE", 123450), ("500.50", "EUR", "de_DE", 50050),
    ("1 234,50", "EUR", "fr_FR", 123450), ("1\u202f234,50", "EUR", "fr_FR", 123450), ("1234,5", "EUR", "nl_NL", 123450),
    ("1,234.50", "USD", "en_US", 123450), ("173,000", "JPY", "ja_JP", 173000), ("173000", "JPY", "ja_JP", 173000),
    ("12", "EUR", "es_ES", 1200), (" 7,05 ", "EUR", "de_AT", 705)
])
def test_a_typed_amount_is_read_in_the_customers_format_or_the_dot_form(text, currency, locale, minor):
    assert money.parse_typed_amount(text, currency, locale) == minor


@pytest.mark.parametrize(("text", "currency", "locale"), [
    ("1,2,3", "EUR", "de_DE"), ("abc", "EUR", "de_DE"), ("5,001", "EUR", "de_DE"), ("1.5", "JPY", "ja_JP"),
    ("1.234.5", "EUR", "de_DE"), ("", "EUR", "de_DE"), ("NaN", "EUR", "de_DE"), ("1e5", "EUR", "de_DE"),
    ("١٢", "EUR", "ar_EG"), ("500,50", "EUR", ""), ("1.234,50", "EUR", "en_US"), ("--5", "EUR", "de_DE"),
])
def test_a_typed_amount_that_is_not_one_is_refused(text, currency, locale):
    with pytest.raises(money.AmountError):
        money.parse_typed_amount(text, currency, locale)


@pytest.mark.parametrize(("minor", "currency", "locale", "text"), [
    (50050, "EUR", "de_DE", "500,50"), (123450, "EUR", "de_DE", "1234,50"), (123450, "USD", "en_US", "1234.50"),
    (173000, "JPY", "ja_JP", "173000"), (5, "EUR", "fr_FR", "0,05"),
])
def test_the_amount_field_shows_what_parse_typed_amount_reads_back(minor, currency, locale, text):
    assert money.input_amount(minor, currency, locale) == text
    assert money.parse_typed_amount(text, currency, locale) == minor
