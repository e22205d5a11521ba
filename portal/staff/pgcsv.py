"""CSV cells formatted by PostgreSQL, cell for cell what the Python path writes, and a reader that streams
ready-made CSV lines.

A 100,000-row export formatted in Python spends seconds in per-cell conversions; PostgreSQL formats the same
rows in a fraction of that. The receipts export keeps its lines formatted in advance with these cells
(portal/staff/receiptlines.py). The cell rules here mirror Python's, and tests compare the two outputs byte for
byte (tests/staff/test_receipts_table.py, tests/staff/test_receiptlines.py):
- text: `csvcells.csv_cell` (the formula guard: a leading apostrophe before = + - @ tab CR unless the cell is a
  plain number; CR and CRLF as LF); an empty string becomes NULL, written as an empty cell;
- money: the decimal string of `money.to_decimal` (12.50, 1234, -0.05), per the row's currency;
- times: ISO 8601 UTC with Z, microseconds only when not zero (datetime.isoformat's rule);
- dates YYYY-MM-DD; booleans true/false; integers as they are.
Quoting (`csv_field`): Python's csv writer (QUOTE_MINIMAL, line terminator LF) quotes a cell containing a comma,
a double quote or a line feed, doubling the double quotes; CR never remains in a cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, literal_column, or_
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Select

from portal.core.money import digits
from portal.staff.csvcells import FORMULA_START, PLAIN_NUMBER
from portal.store.database import Store

FETCH_ROWS = 2000  # lines per round trip (about 400 KB) and per yielded chunk
# csvcells.csv_cell's rules, in SQL: the same first characters (as code points: an integer test is the cheapest
# per cell) and the same "plain number" exception.
_GUARDED_CODES = [ord(c) for c in FORMULA_START]
_PLAIN_NUMBER = f"^{PLAIN_NUMBER.pattern}$"


def text_cell(expr: Any) -> Any:
    """`csvcells.csv_cell` for a text column, in SQL.

    Shaped for the common cell, which needs nothing: one integer test of the first character and one search
    for a CR decide; the regular expression and the replacements run only for the rare cells that need them.
    (At 90,000 rows of seven text cells, the straightforward form cost about 180 ms on the server.) NULL and
    '' both become NULL, which `csv_field` writes as an empty cell."""
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
    """The statement with its parameters inlined (the lines' reader takes a statement string). The "named" paramstyle
    keeps a literal % as one % (the default format style doubles it for the driver, which no driver undoes
    when there are no parameters). Quotes are doubled; backslashes stay as they are, which is only safe with
    standard_conforming_strings on: stream_lines sets it for its transaction."""
    dialect = postgresql.dialect(paramstyle="named")
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def csv_field(expr: Any) -> Any:
    """A text cell (after `text_cell`) as Python's csv writer writes it: NULL as nothing, quoted in double quotes
    (doubled inside) when it contains a comma, a double quote or a line feed."""
    value = func.coalesce(expr, "")
    needs_quotes = or_(func.strpos(value, ",") > 0, func.strpos(value, '"') > 0, func.strpos(value, "\n") > 0)
    return case((needs_quotes, literal('"') + func.replace(value, '"', '""') + literal('"')), else_=value)


def plain_field(expr: Any) -> Any:
    """A cell that never needs quotes (numbers, dates, times, booleans): NULL as nothing."""
    return func.coalesce(expr, "")


def header_line(names: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(names)
    return buffer.getvalue()


def stream_lines(store: Store, query: Select, header: Sequence[str], *, index_order: bool = False
                 ) -> Iterator[str]:
    """The header row, then the one text column of `query` (whole CSV lines, each ending in LF) concatenated,
    FETCH_ROWS lines per chunk, from a server-side cursor in a read-only transaction. Runs when the header has
    been taken and the next chunk is asked for, on a connection of the store's pool.

    `index_order`: the query's order is an index's, so reading the index beats sorting 18 MB of lines, but the
    planner, which does not count the width of what it sorts, prefers a sort (measured at 90,000 lines:
    105 ms by the index, 150 to 230 ms with the sort)."""
    statement = compile_literal(query)
    yield header_line(header)
    raw = store.engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            # The inlined literals rely on it (a server or role may have it off): see compile_literal.
            cursor.execute("SET LOCAL standard_conforming_strings = on")
            # Every row is read: plan for all of them. (A cursor's plan otherwise favours the first 10%: a
            # filtered export of 5,000 lines took 335 ms instead of about 100.)
            cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            if index_order:
                cursor.execute("SET LOCAL enable_sort = off")
        with raw.cursor(name="csv_lines") as cursor:  # server-side: memory stays flat at any size
            cursor.execute(statement)
            while rows := cursor.fetchmany(FETCH_ROWS):
                yield "".join([row[0] for row in rows])
        raw.commit()
    finally:
        raw.close()
