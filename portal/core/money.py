"""Money as integer minor units with a currency. Decimal only at the edges (parsing, formatting)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel import Locale
from babel.numbers import (
    NumberFormatError,
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    list_currencies,
)
from babel.numbers import (
    parse_decimal as babel_parse_decimal,
)

# A plain decimal in major units: optional minus, ASCII digits, optional fraction. No thousands separators,
# no exponent, no currency sign: an ERP export that writes "1,234.50" or "12,50" must be told so. ASCII only:
# `\d` and int() also take Arabic-Indic, fullwidth and other digits, which no ERP means as an amount.
_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# The largest amount, in minor units: what a signed 64-bit integer holds (PostgreSQL's BIGINT, SQLite's
# INTEGER, whose SUM() fails past it). Sums must stay below it too (portal/export/reader.py caps an export's total).
MAX_MINOR = 2**63 - 1
_SAFE_DIGITS = len(str(MAX_MINOR)) - 1  # 18: any number of this many digits is below MAX_MINOR
MAX_DECIMAL_TEXT = 40  # quantities and unit prices are kept as text of at most this length


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


def shown(text: str, limit: int = 40) -> str:
    """`text` for a message: as it is when short, else its start and its length (a 5,000-digit amount is not
    echoed whole)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def parse_amount(text: str, currency: str) -> int:
    """'1234.50' (major units) -> 123450 (minor units). Refuses more decimals than the currency has, and an
    amount of MAX_MINOR minor units or more either way."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        raise AmountError(f'"{shown(text)}" is not a number (write it like 1234.50)')
    whole, _, fraction = text.partition(".")
    places = digits(currency)
    if len(fraction) > places:
        raise AmountError(f'"{shown(text)}" has more than {places} decimals for {currency}')
    # The text is plain digits (checked above), so this is exactly Decimal(text).scaleb(places), in integers.
    if len(whole) + places <= _SAFE_DIGITS:  # the common case: fewer digits than MAX_MINOR's, so below it
        return int(whole + fraction.ljust(places, "0"))
    # Counted before int(): a long enough text would cost time, and int() refuses 4,300 digits and more.
    if len(whole.lstrip("-").lstrip("0")) + places > _SAFE_DIGITS + 1:
        raise AmountError(f'"{shown(text)}" is too large (at most {_largest(currency)})')
    minor = int(whole + fraction.ljust(places, "0"))
    if abs(minor) > MAX_MINOR:
        raise AmountError(f'"{shown(text)}" is too large (at most {_largest(currency)})')
    return minor


def _largest(currency: str) -> str:
    return str(to_decimal(MAX_MINOR, currency))


def parse_decimal(text: str, what: str = "number") -> Decimal:
    """A plain decimal such as a quantity or a unit price with extra precision (at most MAX_DECIMAL_TEXT
    characters: it is kept as text)."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        raise AmountError(f'"{shown(text)}" is not a {what}')
    if len(text) > MAX_DECIMAL_TEXT:
        raise AmountError(f'"{shown(text)}" is too long for a {what} (at most {MAX_DECIMAL_TEXT} characters)')
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already refused it
        raise AmountError(f'"{text}" is not a {what}') from None


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-digits(currency))


@lru_cache(maxsize=256)
def _locale(code: str) -> Locale:
    return Locale.parse(code)


def format_money(minor: int, currency: str, locale: str) -> str:
    """123450, 'EUR', 'de_DE' -> '1.234,50 €' (Babel knows every locale's pattern)."""
    return _money_formatter(currency, locale)(minor)


_PROBES = (0, 1, -1, 9, 10, 99, 100, 101, 999, 1000, 1001, 12345, -12345, 99999, 100000, 1234567, -1234567,
           123456789, -987654321, 10**12 + 1, -(10**15) - 7, 999_999_999_999)


@lru_cache(maxsize=1024)
def _money_formatter(currency: str, locale: str) -> Callable[[int], str]:
    """Babel's format_currency for integer minor units, with what it looks up on every call (the locale's
    pattern and symbols, the currency's symbol and digits) looked up once per currency and locale: a full
    build formats ~40 amounts per customer and Babel spent more time on them than the templates did. The
    result is Babel's own: the fast formatter is used only if it agrees with Babel on probe amounts
    (sign, zero, every grouping width), else Babel formats every amount of that currency and locale."""
    babel_locale = _locale(locale)

    def babel(minor: int) -> str:
        return format_currency(to_decimal(minor, currency), currency, locale=babel_locale)

    try:
        fast = _fast_formatter(currency, babel_locale)
        if all(fast(p) == babel(p) for p in _PROBES):
            return fast
    except Exception:  # noqa: BLE001, S110 - an unusual pattern or locale: Babel handles it
        pass
    return babel


def _fast_formatter(currency: str, babel_locale: Locale) -> Callable[[int], str]:
    pattern = babel_locale.currency_formats["standard"]
    places = digits(currency)
    scale = 10**places
    symbol = get_currency_symbol(currency, babel_locale)
    decimal_sign = get_decimal_symbol(babel_locale)
    group_sign = get_group_symbol(babel_locale)
    primary, secondary = pattern.grouping
    affixes = []
    for negative in (0, 1):
        prefix, suffix = pattern.prefix[negative], pattern.suffix[negative]
        if "'" in prefix + suffix or "¤¤" in prefix + suffix or pattern.scale or pattern.exp_prec:
            raise ValueError("a pattern this formatter does not handle")
        affixes.append((prefix.replace("¤", symbol), suffix.replace("¤", symbol)))

    def fast(minor: int) -> str:
        prefix, suffix = affixes[minor < 0]
        whole, fraction = divmod(-minor if minor < 0 else minor, scale)
        digits_text = str(whole)
        if len(digits_text) > primary:
            groups = [digits_text[-primary:]]
            digits_text = digits_text[:-primary]
            while len(digits_text) > secondary:
                groups.append(digits_text[-secondary:])
                digits_text = digits_text[:-secondary]
            groups.append(digits_text)
            digits_text = group_sign.join(reversed(groups))
        if places:
            digits_text = f"{digits_text}{decimal_sign}{fraction:0{places}d}"
        return f"{prefix}{digits_text}{suffix}"
    return fast


@lru_cache(maxsize=16384)  # a catalogue has few distinct prices
def format_price(value: Decimal | None, currency: str, locale: str) -> str:
    """A unit price that may carry more decimals than the currency (0.1234 USD stays 0.1234)."""
    if value is None:
        return ""
    return format_currency(value, currency, locale=_locale(locale), decimal_quantization=False)


@lru_cache(maxsize=4096)
def format_quantity(value: Decimal | None, locale: str) -> str:
    return "" if value is None else format_decimal(value, locale=_locale(locale), decimal_quantization=False)


_SPACES = " \u00a0\u202f"


def parse_typed_amount(text: str, currency: str, locale: str) -> int:
    """An amount a customer typed into a form: the plain dot form ("500.50") or their locale's own ("500,50",
    "1.234,50" for de; Babel's parse_decimal, strict about grouping) -> minor units. The dot form is tried
    first: it is what the pages put in the fields and is never ambiguous when it has the currency's decimals."""
    try:
        return parse_amount(text, currency)
    except AmountError as plain:
        locale = locale or "en"
        group, decimal = get_group_symbol(locale), get_decimal_symbol(locale)
        text = text.strip()
        if group in _SPACES:  # "1 234,50" typed with a plain space where the locale groups with a narrow one
            text = re.sub(f"[{_SPACES}]", group, text)
        # ASCII digits and the locale's own symbols only: no exponent, no other scripts' digits, no words.
        if not re.fullmatch(f"-?[0-9{re.escape(group + decimal)}]+", text):
            raise plain from None
        try:
            value = babel_parse_decimal(text, locale=locale, strict=True)
        except (NumberFormatError, ValueError):
            raise plain from None
        return parse_amount(format(value, "f"), currency)


def input_amount(minor: int, currency: str, locale: str) -> str:
    """An amount as the customer would type it in their locale, without grouping or sign ("500,50" for de):
    the placeholder and value of an amount field, which parse_typed_amount reads back."""
    places = digits(currency)
    pattern = "0." + "0" * places if places else "0"
    return format_decimal(to_decimal(minor, currency), format=pattern, locale=locale or "en",
                          decimal_quantization=True)
