"""CSV written by PostgreSQL itself (COPY (SELECT ...) TO STDOUT), cell for cell what the Python path writes.

A 100,000-row export formatted in Python spends seconds in per-cell conversions; PostgreSQL formats the same
rows in a fraction of that. The cell rules here mirror Python's, and tests compare the two outputs byte for
byte (tests/test_stafftables.py):
- text: `reports.csv_cell` (the formula guard: a leading apostrophe before = + - @ tab CR unless the cell is a
  plain number; CR and CRLF as LF); an empty string becomes NULL, which COPY writes as an empty, unquoted
  cell, as Python's csv module does;
- money: the decimal string of `money.to_decimal` (12.50, 1234, -0.05), per the row's currency;
- times: ISO 8601 UTC with Z, microseconds only when not zero (datetime.isoformat's rule);
- dates YYYY-MM-DD; booleans true/false; integers as they are.
Quoting: both quote a cell containing a comma, a double quote or a line break (CR never remains).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Select

from .money import digits
from .reports import _FORMULA_START
from .reports import _PLAIN_NUMBER as _PLAIN_NUMBER_RE
from .store import Store

CHUNK_BYTES = 1 << 16
EXPORT_WORK_MEM = "64MB"
# reports.csv_cell's rules, in SQL: the same first characters (as code points: an integer test is the cheapest
# per cell) and the same "plain number" exception.
_GUARDED_CODES = [ord(c) for c in _FORMULA_START]
_PLAIN_NUMBER = f"^{_PLAIN_NUMBER_RE.pattern}$"


def text_cell(expr: Any) -> Any:
    """`reports.csv_cell` for a text column, in SQL.

    Shaped for the common cell, which needs nothing: one integer test of the first character and one search
    for a CR decide; the regular expression and the replacements run only for the rare cells that need them.
    (At 90,000 rows of seven text cells, the straightforward form cost about 180 ms on the server.) NULL and
    '' both become NULL, which COPY writes as an empty, unquoted cell."""
    value = expr
    first = func.ascii(value)
    lf_only = func.replace(func.replace(value, "\r\n", "\n"), "\r", "\n")
    return case((and_(first.in_(_GUARDED_CODES), value.op("!~")(_PLAIN_NUMBER)), literal("'") + lf_only),
                (func.strpos(value, "\r") > 0, lf_only),
                else_=func.nullif(value, ""))


def money_cell(minor: Any, currency: Any, currencies: Iterable[str]) -> Any:
    """Minor units -> the major-unit decimal string for each currency that can occur (`currencies`).

    Multiplying by 0.01 (or 0.001, ...) gives a numeric of exactly that scale (12.50, -0.05, 0.00): the same
    digits as a division and a rounding, for less. One branch per number of digits, not per currency."""
    by_digits: dict[int, list[str]] = {}
    for code in sorted(set(currencies)):
        by_digits.setdefault(digits(code), []).append(code)
    whens = [(currency.in_(codes), cast(minor, String) if places == 0
              else cast(minor * literal_column(f"0.{'0' * (places - 1)}1"), String))
             for places, codes in sorted(by_digits.items(), key=lambda item: -len(item[1]))]
    if not whens:
        return cast(minor, String)
    return case(*whens, else_=None)


def iso_cell(ts: Any) -> Any:
    """A naive-UTC timestamp column as 2026-11-20T18:00:00Z (or ...:00.123456Z).

    From the timestamp's text form (DateStyle ISO: "2026-11-20 18:00:00.1234", trailing zeros of the fraction
    dropped) rather than to_char: two to_char calls per cell cost about 80 ms over 90,000 rows of four
    timestamps (measured), the cast next to nothing. The fraction is padded back to six digits, as Python's
    isoformat writes it."""
    text = cast(ts, String)
    padded = case((func.strpos(text, ".") > 0, func.rpad(text, 26, "0")), else_=text)
    return func.replace(padded, " ", "T") + "Z"


def date_cell(d: Any) -> Any:
    """YYYY-MM-DD: a date's text form under DateStyle ISO."""
    return cast(d, String)


def bool_cell(b: Any) -> Any:
    return case((b, "true"), else_="false")


def compile_literal(query: Select) -> str:
    """The statement with its parameters inlined (COPY takes no bind parameters). The "named" paramstyle
    keeps a literal % as one % (the default format style doubles it for the driver, which no driver undoes
    when there are no parameters). Quotes are doubled; backslashes stay as they are, which is only safe with
    standard_conforming_strings on: copy_csv sets it for its transaction."""
    dialect = postgresql.dialect(paramstyle="named")
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def copy_csv(store: Store, query: Select) -> Iterator[str]:
    """Stream `query` as CSV with a header row (the select's labels), in ~64 KiB chunks of text. Runs when the
    first chunk is asked for, on a connection of the store's pool, in a read-only transaction."""
    statement = f"COPY ({compile_literal(query)}) TO STDOUT WITH (FORMAT csv, HEADER)"
    raw = store.engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            # The export sorts every matching row, already formatted (about 200 bytes each): with the default
            # 4 MB work_mem, 100,000 rows spill to a merge sort on disk. This transaction only reads.
            cursor.execute(f"SET LOCAL work_mem = '{EXPORT_WORK_MEM}'")
            # The inlined literals rely on it (a server or role may have it off): see compile_literal.
            cursor.execute("SET LOCAL standard_conforming_strings = on")
            # Dates and timestamps are written from their text form (iso_cell, date_cell), which DateStyle sets.
            cursor.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            parts: list[bytes] = []
            size = 0
            for data in copy:  # one row per message: whole UTF-8 characters, so chunks can be decoded alone
                parts.append(bytes(data))
                size += len(data)
                if size >= CHUNK_BYTES:
                    yield b"".join(parts).decode("utf-8")
                    parts, size = [], 0
            if parts:
                yield b"".join(parts).decode("utf-8")
        raw.commit()
    finally:
        raw.close()
