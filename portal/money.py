"""Money as integer minor units with a currency. Decimal only at the edges (parsing, formatting)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel import Locale
from babel.numbers import format_currency, format_decimal, get_currency_precision, list_currencies

# A plain decimal in major units: optional minus, digits, optional fraction. No thousands separators,
# no exponent, no currency sign: an ERP export that writes "1,234.50" or "12,50" must be told so.
_AMOUNT = re.compile(r"-?\d+(\.\d+)?")


class AmountError(ValueError):
    """Raised with a message that names what is wrong with the text."""


@cache
def is_currency(code: str) -> bool:
    return code in _currencies()


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@cache
def digits(currency: str) -> int:
    """Minor-unit digits of a currency (USD 2, JPY 0, BHD 3)."""
    return get_currency_precision(currency)


def parse_amount(text: str, currency: str) -> int:
    """'1234.50' (major units) -> 123450 (minor units). Refuses more decimals than the currency has."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        raise AmountError(f'"{text}" is not a number (write it like 1234.50)')
    places = len(text.partition(".")[2])
    if places > digits(currency):
        raise AmountError(f'"{text}" has more than {digits(currency)} decimals for {currency}')
    return int(Decimal(text).scaleb(digits(currency)))


def parse_decimal(text: str, what: str = "number") -> Decimal:
    """A plain decimal such as a quantity or a unit price with extra precision."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        raise AmountError(f'"{text}" is not a {what}')
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already refused it
        raise AmountError(f'"{text}" is not a {what}') from None


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-digits(currency))


@lru_cache(maxsize=256)
def _locale(code: str) -> Locale:
    return Locale.parse(code)


@lru_cache(maxsize=65536)  # each amount shows on several pages and PDFs of the same customer
def format_money(minor: int, currency: str, locale: str) -> str:
    """123450, 'EUR', 'de_DE' -> '1.234,50 €' (Babel knows every locale's pattern)."""
    return format_currency(to_decimal(minor, currency), currency, locale=_locale(locale))


@lru_cache(maxsize=16384)  # a catalogue has few distinct prices
def format_price(value: Decimal | None, currency: str, locale: str) -> str:
    """A unit price that may carry more decimals than the currency (0.1234 USD stays 0.1234)."""
    if value is None:
        return ""
    return format_currency(value, currency, locale=_locale(locale), decimal_quantization=False)


@lru_cache(maxsize=4096)
def format_quantity(value: Decimal | None, locale: str) -> str:
    return "" if value is None else format_decimal(value, locale=_locale(locale), decimal_quantization=False)
