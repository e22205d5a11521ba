"""Reading the export's CSV files: records with the line they start on, rows that report each problem where it
is (`file:line: column: message`), and the state of one reading (problems, warnings, refused ids, totals).

What every row of every file shares is checked here, in `CsvFile.records`, once per row: the row's width, and a
control character in any field read (NUL, ESC, BEL...: refused by PostgreSQL, or harmful in a terminal, a header,
a PDF; tab and line breaks are text), which is reported and leaves the row out. `Reader.add_to_total` keeps an
export's running totals of invoice and credit amounts and of line amounts at most MAX_MINOR
(portal/core/money.py): every sum the portal makes of them fits in a 64-bit integer.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from operator import itemgetter
from pathlib import Path

from portal.core.config import Settings
from portal.core.money import MAX_MINOR, AmountError, is_currency, parse_amount, parse_decimal
from portal.export.model import Ledger

# The running totals kept below MAX_MINOR: invoice and credit amounts together, and line amounts.
AMOUNTS, LINE_AMOUNTS = "invoice and credit amounts", "line amounts"
# The columns read from each file (others are ignored, and so is what they hold), and the id column of the
# files other rows refer to, with the Reader's set of ids whose row was refused.
COLUMNS = {
    "customers.csv": ("customer_id", "name", "currency", "locale", "group", "collector"),
    "contacts.csv": ("customer_id", "email", "contact_id", "name", "role"),
    "invoices.csv": ("invoice_id", "customer_id", "number", "issue_date", "due_date", "currency", "amount",
                     "balance", "po_number", "terms", "description"),
    "invoice_lines.csv": ("invoice_id", "description", "quantity", "unit_price", "amount"),
    "credits.csv": ("credit_id", "customer_id", "number", "issue_date", "amount", "balance", "currency",
                    "description"),
    "documents.csv": ("document_id", "customer_id", "file", "invoice_id", "kind", "title"),
}
_REFERRED = {"customers.csv": ("customer_id", "invalid_customers"), "invoices.csv": ("invoice_id", "invalid_invoices")}
# Control characters other than tab and line breaks (C0, DEL, C1); see the module docstring.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class Row:
    """One CSV record with its file name and line number, so every message can say where."""

    __slots__ = ("file", "line", "values", "problems")

    def __init__(self, file: str, line: int, values: dict[str, str], problems: list[str]):
        self.file, self.line, self.values, self.problems = file, line, values, problems

    def get(self, column: str) -> str:
        return self.values.get(column, "")  # stripped when read

    def error(self, column: str, message: str) -> None:
        self.problems.append(f"{self.file}:{self.line}: {column}: {message}")

    def required(self, column: str) -> str:
        value = self.get(column)
        if not value:
            self.error(column, "is empty")
        return value

    def date(self, column: str) -> date | None:
        text = self.required(column)
        if not text:
            return None
        try:
            if len(text) != 10:
                raise ValueError
            return date.fromisoformat(text)
        except ValueError:
            self.error(column, f'"{text}" is not a date (write it as YYYY-MM-DD)')
            return None

    def amount(self, column: str, currency: str, required: bool = True) -> int | None:
        text = self.required(column) if required else self.get(column)
        if not text:
            return None
        try:
            return parse_amount(text, currency)
        except AmountError as exc:
            self.error(column, str(exc))
            return None

    def amount_and_balance(self, currency: str, negative_hint: str) -> tuple[int | None, int | None]:
        """`amount` and `balance` in minor units; (None, None) parts where invalid, each problem reported."""
        amount = self.amount("amount", currency) if currency else None
        balance = self.amount("balance", currency) if currency else None
        if amount is not None and amount < 0:
            self.error("amount", f"is negative: {negative_hint}")
            amount = None
        if balance is not None and balance < 0:
            self.error("balance", "is negative")
            balance = None
        elif balance is not None and amount is not None and balance > amount:
            self.error("balance", "is larger than amount")
            balance = None
        return amount, balance

    def decimal(self, column: str, what: str) -> Decimal | None:
        text = self.get(column)
        if not text:
            return None
        try:
            return parse_decimal(text, what)
        except AmountError as exc:
            self.error(column, str(exc))
            return None


class CsvFile:
    """One CSV file being read: its header and its records, each with the line it starts on."""

    __slots__ = ("name", "header", "reader", "problems", "index", "dirty", "invalid")

    def __init__(self, name: str, header: list[str], reader, problems: list[str], dirty: bool = False,
                 invalid: tuple[str, set[str]] | None = None):
        self.name, self.header, self.reader, self.problems = name, header, reader, problems
        # The last of repeated columns, as the Row's dict(zip(header, ...)) keeps it.
        self.index = {column: position for position, column in enumerate(header)}
        # Whether the file holds a control character anywhere (one search of the whole text), and where the
        # id of a row refused for one goes (its column, the reader's set of invalid ids).
        self.dirty, self.invalid = dirty, invalid

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(line, stripped fields + one "" after them) for each non-blank record of the header's width
        without control characters; other records are reported. The trailing "" stands in for optional
        columns the file lacks."""
        name, reader, problems = self.name, self.reader, self.problems
        width = len(self.header)
        strip = str.strip
        previous = reader.line_num
        try:
            for record in reader:
                line, previous = previous + 1, reader.line_num
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue
                if len(record) != width:
                    problems.append(f"{name}:{line}: the row has {len(record)} fields, the header has {width}")
                    continue
                fields = list(map(strip, record))
                if self.dirty and self._has_control(line, fields):
                    continue
                fields.append("")
                yield line, fields
        except csv.Error as exc:  # the rest of the file cannot be split into records
            problems.append(f"{name}:{previous + 1}: {exc}")

    def _has_control(self, line: int, fields: list[str]) -> bool:
        """Report each read field of the record that holds a control character; True if any does."""
        found = False
        for column in COLUMNS.get(self.name, self.header):
            position = self.index.get(column)
            match = _CONTROL.search(fields[position]) if position is not None else None
            if match:
                found = True
                self.problems.append(f"{self.name}:{line}: {column}: contains the control character "
                                     f"U+{ord(match.group()):04X}; remove it")
        if found and self.invalid is not None:
            column, ids = self.invalid
            if ident := fields[self.index[column]]:
                ids.add(ident)  # references to this row are not reported again
        return found

    def getter(self, *columns: str) -> Callable[[list[str]], tuple[str, ...]]:
        """fields -> the values of `columns` ("" for a column the file does not have)."""
        width = len(self.header)
        return itemgetter(*(self.index.get(column, width) for column in columns))

    def row(self, line: int, fields: list[str]) -> Row:
        return Row(self.name, line, dict(zip(self.header, fields[:-1], strict=True)), self.problems)


class Reader:
    def __init__(self, folder: Path, settings: Settings):
        self.folder = folder
        self.settings = settings
        self.problems: list[str] = []
        self.warnings: list[str] = []
        # Ids whose own row was invalid: references to them are not reported again (one root cause,
        # one message).
        self.invalid_customers: set[str] = set()
        self.invalid_invoices: set[str] = set()
        # Files that could not be read at all: references into them are not reported either.
        self.failed_files: set[str] = set()
        self.totals: dict[str, int] = {AMOUNTS: 0, LINE_AMOUNTS: 0}

    def add_to_total(self, total: str, amount: int) -> bool:
        """Add `amount` to the running `total` when the sum stays at most MAX_MINOR; False (nothing added)
        otherwise. Both reading paths call it for each row they take, in file order."""
        totals = self.totals
        value = totals[total] + amount
        if value > MAX_MINOR:
            return False
        totals[total] = value
        return True

    def total_error(self, row: Row, total: str) -> None:
        row.error("amount", f"with the {total} before it, adds up to more than {MAX_MINOR} minor units, the most "
                            "the portal can add up")

    def fail(self, name: str, message: str) -> None:
        self.failed_files.add(name)
        self.problems.append(message)

    def unknown_invoice(self, row: Row, invoice_id: str) -> None:
        if invoice_id not in self.invalid_invoices and "invoices.csv" not in self.failed_files:
            row.error("invoice_id", f'"{invoice_id}" is not in invoices.csv')

    def known_customer(self, row: Row, ledger: Ledger) -> str:
        """The row's customer_id if that customer was read; '' (reported once) otherwise."""
        customer_id = row.required("customer_id")
        if customer_id and customer_id not in ledger.customers:
            if customer_id not in self.invalid_customers and "customers.csv" not in self.failed_files:
                row.error("customer_id", f'"{customer_id}" is not in customers.csv')
            return ""
        return customer_id

    def table(self, name: str, required_columns: tuple[str, ...], required: bool = True) -> CsvFile | None:
        """The file's header, checked; None (with the problem recorded) when the file cannot be read."""
        path = self.folder / name
        if not path.is_file():
            if required:
                self.fail(name, f"{name}: required file is missing")
            return None
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            self.fail(name, f"{name}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
                                 "save the export as UTF-8")
            return None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            self.fail(name, f"{name}:1: the header row is missing")
            return None
        except csv.Error as exc:
            self.fail(name, f"{name}:1: {exc}")
            return None
        missing = [c for c in required_columns if c not in header]
        for column in missing:
            self.fail(name, f"{name}:1: {column}: required column is missing")
        if missing:
            return None
        referred = _REFERRED.get(name)
        invalid = (referred[0], getattr(self, referred[1])) if referred else None
        return CsvFile(name, header, reader, self.problems, _CONTROL.search(text) is not None, invalid)

    def rows(self, name: str, required_columns: tuple[str, ...], required: bool = True) -> Iterator[Row]:
        """Every record of the file as a Row (the small files, which have no fast path)."""
        table = self.table(name, required_columns, required)
        if table is not None:
            for line, fields in table.records():
                yield table.row(line, fields)

    def unique(self, row: Row, column: str, seen: dict[str, int]) -> str:
        """The row's id, or '' (with a problem recorded) when it is empty or a duplicate."""
        value = row.required(column)
        if value and value in seen:
            row.error(column, f'"{value}" is a duplicate of line {seen[value]}')
            return ""
        if value:
            seen[value] = row.line
        return value

    def currency(self, row: Row, default: str) -> str:
        code = row.get("currency").upper() or default
        if not is_currency(code):
            row.error("currency", f'"{code}" is not an ISO 4217 currency code')
            return ""
        return code

