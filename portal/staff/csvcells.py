"""CSV cells: the one rule every CSV of the portal writes its cells by (reports, table exports, the KPIs).

- `csv_cell`: None -> empty, booleans true/false, line breaks as LF (a lone CR would end the row in some
  readers), and a cell a spreadsheet would run as a formula ("CSV injection") behind an apostrophe: customer
  names, notes and ids come from outside, and staff open these files in Excel. Plain numbers such as -12.50
  are data and stay as they are.
- `iso_utc`: times as ISO 8601 UTC with Z; `major_units`: money as the decimal string in major units (12.50).

portal/staff/pgcsv.py writes the same rules in SQL for PostgreSQL (from FORMULA_START and PLAIN_NUMBER here);
tests compare the two byte for byte (tests/staff/test_receipts_table.py, tests/staff/test_receiptlines.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from portal.core.money import to_decimal

# The first characters that make a spreadsheet read a cell as a formula, and the one exception: a plain number.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_cell(value: Any) -> str:
    """One CSV cell, the single rule every CSV of the portal uses: None -> empty, booleans true/false, text
    starting with = + - @ tab or CR (other than a plain number) behind an apostrophe, and line breaks as LF
    (a lone CR would end the row in some readers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def iso_utc(value: datetime | None) -> str | None:
    """2026-11-20T18:00:00Z (microseconds only when not zero); None stays None (an empty cell)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def major_units(minor: int | None, currency: str) -> str | None:
    """Minor units as the currency's decimal string in major units (1250 USD -> "12.50"); None stays None."""
    return None if minor is None else str(to_decimal(int(minor), currency))
