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

from sqlalchemy import String, and_, case, cast, func, literal
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Select

from .money import digits
from .reports import _FORMULA_START
from .reports import _PLAIN_NUMBER as _PLAIN_NUMBER_RE
from .store import Store

CHUNK_BYTES = 1 << 16
EXPORT_WORK_MEM = "64MB"
# reports.csv_cell's rules, in SQL: the same first characters and the same "plain number" exception.
_GUARDED = list(_FORMULA_START)
_PLAIN_NUMBER = f"^{_PLAIN_NUMBER_RE.pattern}$"


def text_cell(expr: Any) -> Any:
    """`reports.csv_cell` for a text column, in SQL."""
    value = func.coalesce(expr, "")
    guarded = case((and_(func.left(value, 1).in_(_GUARDED), value.op("!~")(_PLAIN_NUMBER)), literal("'") + value),
                   else_=value)
    return func.nullif(func.replace(func.replace(guarded, "\r\n", "\n"), "\r", "\n"), "")


def money_cell(minor: Any, currency: Any, currencies: Iterable[str]) -> Any:
    """Minor units -> the major-unit decimal string for each currency that can occur (`currencies`)."""
    whens = [(currency == code, func.round(minor / literal(10 ** digits(code)), digits(code)))
             for code in sorted(set(currencies))]
    if not whens:
        return cast(minor, String)
    return cast(case(*whens, else_=None), String)


def iso_cell(ts: Any) -> Any:
    """A naive-UTC timestamp column as 2026-11-20T18:00:00Z (or ...:00.123456Z)."""
    micro = func.to_char(ts, "US")
    return (func.to_char(ts, 'YYYY-MM-DD"T"HH24:MI:SS')
            + case((micro == "000000", ""), else_="." + micro) + "Z")


def date_cell(d: Any) -> Any:
    return func.to_char(d, "YYYY-MM-DD")


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
