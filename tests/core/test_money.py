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
