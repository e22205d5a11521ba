"""The AR data model and the reader of the ERP export (DESIGN.md section 3).

`read_export(folder, settings)` returns a `Ledger` or raises `ExportInvalid` listing every problem as
`file:line: column: message`. Nothing is written anywhere by this module.

The big files (customers, contacts, invoices, invoice lines) are read with a fast path: a row that is valid
as it stands is taken straight into the ledger from its fields, and any other row goes through the checks
that name each problem (`_customer_row` ...). The fast path only takes a row those checks would take
without a word, with the same effect, so both give the same ledger and the same messages in the same order
(tests/test_ledger_fastpath.py compares them); it exists because the checks' per-row cost was most of a
full build's serial time at 100,000 invoices.

What both paths share is checked where records are read (`_Table.records`), once for every row: a control
character in any field (NUL, ESC, BEL...: refused by PostgreSQL, or harmful in a terminal, a header, a PDF; tab
and line breaks are text) is reported and the row is left out. Amounts are plain ASCII decimals below 2^63 minor
units (portal/core/money.py), and so are the running totals of an export's invoice and credit amounts and of its
line amounts (`_Reader.add_to_total`): every sum the portal makes of them fits in a 64-bit integer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

from babel import Locale, UnknownLocaleError

from portal.core.config import Settings
from portal.core.errors import ExportInvalid
from portal.core.gcpause import collector_paused
from portal.core.money import MAX_MINOR, AmountError, is_currency, parse_amount, parse_decimal

ROLES = ("billing", "approver", "other")
# The running totals kept below MAX_MINOR: invoice and credit amounts together, and line amounts.
AMOUNTS, LINE_AMOUNTS = "invoice and credit amounts", "line amounts"
# The columns read from each file (others are ignored, and so is what they hold), and the id column of the
# files other rows refer to, with the _Reader's set of ids whose row was refused.
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
DOCUMENT_KINDS = ("invoice", "po", "contract", "delivery", "statement", "other")
# Supplied documents are served to customers as downloads: only types that do not run in a browser.
DOCUMENT_TYPES = {
    ".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".csv": "text/csv", ".txt": "text/plain", ".xml": "application/xml", ".zip": "application/zip",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".doc": "application/msword",
}
# Shown in the browser when opened; every other type is served as a download (`attachment`), on every target,
# so no document (an .xml, a .txt with markup) is rendered on the origin that serves it.
INLINE_TYPES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp"})


def document_disposition(name: str) -> str:
    """`inline` or `attachment` for a document named `name` (by its extension): the one rule for the folder
    target's /files/ route and for the S3 target's presigned URLs."""
    return "inline" if Path(name).suffix.lower() in INLINE_TYPES else "attachment"


# Control characters other than tab and line breaks (C0, DEL, C1); see the module docstring.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Deliberately strict: an address goes into mail headers, so no spaces, commas or line breaks.
_EMAIL = re.compile(r"[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"']+")


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    name: str
    currency: str
    locale: str
    group: str = ""
    collector: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    customer_id: str
    contact_id: str
    email: str
    name: str = ""
    role: str = "billing"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    invoice_id: str
    line_no: int
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: int


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: str
    customer_id: str
    number: str
    issue_date: date
    due_date: date
    amount: int
    balance: int
    currency: str
    po_number: str = ""
    terms: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Credit:
    credit_id: str
    customer_id: str
    number: str
    issue_date: date
    amount: int
    balance: int
    currency: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    document_id: str
    customer_id: str
    file: str  # as written in documents.csv, relative to the export folder
    invoice_id: str = ""
    kind: str = "other"
    title: str = ""
    sha256: str = ""
    size: int = 0
    content_type: str = "application/octet-stream"

    @property
    def extension(self) -> str:
        return Path(self.file).suffix.lower()


@dataclass
class Ledger:
    """One snapshot of open AR as the ERP exported it."""

    folder: Path
    as_of: datetime
    customers: dict[str, Customer] = field(default_factory=dict)
    contacts: list[Contact] = field(default_factory=list)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    lines: dict[str, list[InvoiceLine]] = field(default_factory=dict)
    credits: dict[str, Credit] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def document_path(self, document: Document) -> Path:
        return self.folder / document.file


class _Row:
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


class _Table:
    """One CSV file being read: its header and its records, each with the line it starts on."""

    __slots__ = ("name", "header", "reader", "problems", "index", "dirty", "invalid")

    def __init__(self, name: str, header: list[str], reader, problems: list[str], dirty: bool = False,
                 invalid: tuple[str, set[str]] | None = None):
        self.name, self.header, self.reader, self.problems = name, header, reader, problems
        # The last of repeated columns, as the _Row's dict(zip(header, ...)) keeps it.
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

    def row(self, line: int, fields: list[str]) -> _Row:
        return _Row(self.name, line, dict(zip(self.header, fields[:-1], strict=True)), self.problems)


class _Reader:
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

    def total_error(self, row: _Row, total: str) -> None:
        row.error("amount", f"with the {total} before it, adds up to more than {MAX_MINOR} minor units, the most "
                            "the portal can add up")

    def fail(self, name: str, message: str) -> None:
        self.failed_files.add(name)
        self.problems.append(message)

    def unknown_invoice(self, row: _Row, invoice_id: str) -> None:
        if invoice_id not in self.invalid_invoices and "invoices.csv" not in self.failed_files:
            row.error("invoice_id", f'"{invoice_id}" is not in invoices.csv')

    def known_customer(self, row: _Row, ledger: Ledger) -> str:
        """The row's customer_id if that customer was read; '' (reported once) otherwise."""
        customer_id = row.required("customer_id")
        if customer_id and customer_id not in ledger.customers:
            if customer_id not in self.invalid_customers and "customers.csv" not in self.failed_files:
                row.error("customer_id", f'"{customer_id}" is not in customers.csv')
            return ""
        return customer_id

    def table(self, name: str, required_columns: tuple[str, ...], required: bool = True) -> _Table | None:
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
        return _Table(name, header, reader, self.problems, _CONTROL.search(text) is not None, invalid)

    def rows(self, name: str, required_columns: tuple[str, ...], required: bool = True) -> Iterator[_Row]:
        """Every record of the file as a _Row (the small files, which have no fast path)."""
        table = self.table(name, required_columns, required)
        if table is not None:
            for line, fields in table.records():
                yield table.row(line, fields)

    def unique(self, row: _Row, column: str, seen: dict[str, int]) -> str:
        """The row's id, or '' (with a problem recorded) when it is empty or a duplicate."""
        value = row.required(column)
        if value and value in seen:
            row.error(column, f'"{value}" is a duplicate of line {seen[value]}')
            return ""
        if value:
            seen[value] = row.line
        return value

    def currency(self, row: _Row, default: str) -> str:
        code = row.get("currency").upper() or default
        if not is_currency(code):
            row.error("currency", f'"{code}" is not an ISO 4217 currency code')
            return ""
        return code


def read_export(folder: str | os.PathLike, settings: Settings) -> Ledger:
    """Read and validate an export folder; raise ExportInvalid with every problem found."""
    root = Path(folder)
    if not root.is_dir():
        raise ExportInvalid([f"{root}: not a folder"])
    root = root.resolve()
    reader = _Reader(root, settings)
    ledger = Ledger(folder=root, as_of=_read_as_of(root, reader.problems))
    with collector_paused():  # the ledger is a big tree without cycles: nothing for the collector to find
        _read_customers(reader, ledger)
        _read_contacts(reader, ledger)
        _read_invoices(reader, ledger)
        _read_lines(reader, ledger)
        _read_credits(reader, ledger)
        _read_documents(reader, ledger)
    for customer_id in sorted(set(ledger.customers) - {c.customer_id for c in ledger.contacts}):
        reader.warnings.append(f'customers.csv: customer "{customer_id}" has no contacts: no one can be '
                               "sent a link")
    if reader.problems:
        raise ExportInvalid(reader.problems, reader.warnings)
    ledger.warnings = reader.warnings
    return ledger


def _read_as_of(root: Path, problems: list[str]) -> datetime:
    path = root / "export.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            problems.append("export.json:1: not valid UTF-8")
            return datetime.now(UTC)
        except json.JSONDecodeError as exc:
            problems.append(f"export.json:{exc.lineno}: {exc.msg}")
            return datetime.now(UTC)
        text = data.get("as_of") if isinstance(data, dict) else None
        if not isinstance(text, str):
            problems.append('export.json:1: as_of: missing (write {"as_of": "2026-11-20T18:00:00Z"})')
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f'export.json:1: as_of: "{text}" is not an ISO 8601 time')
            return datetime.now(UTC)
        if moment.tzinfo is None:
            problems.append(f'export.json:1: as_of: "{text}" has no time zone (add Z for UTC)')
            return datetime.now(UTC)
        return moment.astimezone(UTC)
    newest = max((p.stat().st_mtime for p in root.glob("*.csv")), default=None)
    moment = datetime.fromtimestamp(newest, UTC) if newest else datetime.now(UTC)
    return moment.replace(microsecond=0)


@lru_cache(maxsize=256)  # a handful of locales, on every customer row
def _is_locale(code: str) -> bool:
    try:
        Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        return False
    return True


def _iso_date(text: str, cache: dict[str, date | None]) -> date | None:
    """The date `_Row.date` reads from `text`, or None where it reports a problem. Dates repeat: parsed once."""
    try:
        return cache[text]
    except KeyError:
        pass
    try:
        value = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        value = None
    cache[text] = value
    return value


def _decimal(text: str, cache: dict[str, Decimal]) -> Decimal:
    """parse_decimal(text), parsed once per distinct text (quantities and prices repeat)."""
    value = cache.get(text)
    if value is None:
        value = cache[text] = parse_decimal(text)
    return value


def _read_customers(reader: _Reader, ledger: Ledger) -> None:
    table = reader.table("customers.csv", ("customer_id", "name"))
    if table is None:
        return
    seen: dict[str, int] = {}
    default_currency, default_locale = reader.settings.default_currency, reader.settings.default_locale
    fields_of = table.getter("customer_id", "name", "currency", "locale", "group", "collector")
    customers = ledger.customers
    for line, fields in table.records():
        customer_id, name, currency, locale, group, collector = fields_of(fields)
        currency = currency.upper() or default_currency
        locale = locale or default_locale
        if customer_id and customer_id not in seen and name and is_currency(currency) and _is_locale(locale) \
                and (not collector or _EMAIL.fullmatch(collector)):
            seen[customer_id] = line
            customers[customer_id] = Customer(customer_id, name, currency, locale, group, collector)
        else:
            _customer_row(reader, ledger, table.row(line, fields), seen)


def _customer_row(reader: _Reader, ledger: Ledger, row: _Row, seen: dict[str, int]) -> None:
    customer_id = reader.unique(row, "customer_id", seen)
    name = row.required("name")
    currency = reader.currency(row, reader.settings.default_currency)
    locale = row.get("locale") or reader.settings.default_locale
    try:
        Locale.parse(locale)
    except (ValueError, UnknownLocaleError):
        row.error("locale", f'"{locale}" is not a known locale (write it like en_US or de_DE)')
        locale = ""
    collector = row.get("collector")
    if collector and not _EMAIL.fullmatch(collector):
        row.error("collector", f'"{collector}" is not an email address')
    if customer_id and name and currency and locale:
        ledger.customers[customer_id] = Customer(customer_id, name, currency, locale,
                                                 row.get("group"), collector)
    elif customer_id:
        reader.invalid_customers.add(customer_id)


def _read_contacts(reader: _Reader, ledger: Ledger) -> None:
    table = reader.table("contacts.csv", ("customer_id", "email"))
    if table is None:
        return
    seen: dict[tuple[str, str], int] = {}
    fields_of = table.getter("customer_id", "email", "contact_id", "name", "role")
    customers, contacts = ledger.customers, ledger.contacts
    for line, fields in table.records():
        customer_id, email, contact_id, name, role = fields_of(fields)
        contact_id = contact_id or email
        role = role.lower() or "billing"
        if customer_id in customers and email and _EMAIL.fullmatch(email) and role in ROLES \
                and (customer_id, contact_id) not in seen:
            seen[customer_id, contact_id] = line
            contacts.append(Contact(customer_id, contact_id, email, name, role))
        else:
            _contact_row(reader, ledger, table.row(line, fields), seen)


def _contact_row(reader: _Reader, ledger: Ledger, row: _Row, seen: dict[tuple[str, str], int]) -> None:
    customer_id = reader.known_customer(row, ledger)
    email = row.required("email")
    if email and not _EMAIL.fullmatch(email):
        row.error("email", f'"{email}" is not an email address')
        email = ""
    contact_id = row.get("contact_id") or email
    role = row.get("role").lower() or "billing"
    if role not in ROLES:
        row.error("role", f'"{role}" is not one of {", ".join(ROLES)}')
    if customer_id and contact_id:
        if (customer_id, contact_id) in seen:
            row.error("contact_id", f'"{contact_id}" is a duplicate of line {seen[customer_id, contact_id]}')
            return
        seen[customer_id, contact_id] = row.line
    if customer_id and email and role in ROLES:
        ledger.contacts.append(Contact(customer_id, contact_id, email, row.get("name"), role))


def _read_invoices(reader: _Reader, ledger: Ledger) -> None:
    table = reader.table("invoices.csv", ("invoice_id", "customer_id", "number", "issue_date", "due_date",
                                          "amount", "balance"))
    if table is None:
        return
    seen: dict[str, int] = {}
    dates: dict[str, date | None] = {}
    allow_foreign = reader.settings.allow_foreign_currency
    fields_of = table.getter("invoice_id", "customer_id", "number", "issue_date", "due_date", "currency",
                             "amount", "balance", "po_number", "terms", "description")
    customers, invoices, totals = ledger.customers, ledger.invoices, reader.totals
    for line, fields in table.records():
        invoice_id, customer_id, number, issue_text, due_text, currency, amount_text, balance_text, po_number, \
            terms, description = fields_of(fields)
        customer = customers.get(customer_id)
        if invoice_id and invoice_id not in seen and customer is not None and number \
                and (issue_date := _iso_date(issue_text, dates)) and (due_date := _iso_date(due_text, dates)) \
                and due_date >= issue_date:  # else a warning, which the checks give
            currency = currency.upper() or customer.currency
            if is_currency(currency) and (allow_foreign or currency == customer.currency):
                try:
                    amount, balance = parse_amount(amount_text, currency), parse_amount(balance_text, currency)
                except AmountError:
                    amount = balance = -1
                # reader.add_to_total(AMOUNTS, amount), inline: this runs once per invoice.
                if 0 <= balance <= amount and (total := totals[AMOUNTS] + amount) <= MAX_MINOR:
                    totals[AMOUNTS] = total
                    seen[invoice_id] = line
                    invoices[invoice_id] = Invoice(invoice_id, customer_id, number, issue_date, due_date, amount,
                                                   balance, currency, po_number, terms, description)
                    continue
        _invoice_row(reader, ledger, table.row(line, fields), seen)


def _invoice_row(reader: _Reader, ledger: Ledger, row: _Row, seen: dict[str, int]) -> None:
    invoice_id = reader.unique(row, "invoice_id", seen)
    customer_id = reader.known_customer(row, ledger)
    customer = ledger.customers.get(customer_id)
    number = row.required("number")
    issue_date, due_date = row.date("issue_date"), row.date("due_date")
    currency = reader.currency(row, customer.currency if customer else reader.settings.default_currency)
    if customer and currency and currency != customer.currency and not reader.settings.allow_foreign_currency:
        row.error("currency", f"{currency} differs from the customer's {customer.currency} "
                              "(set allow_foreign_currency = true to allow it)")
        currency = ""
    amount, balance = row.amount_and_balance(currency, "put credit notes in credits.csv")
    if issue_date and due_date and due_date < issue_date:
        reader.warnings.append(f"invoices.csv:{row.line}: due_date: {due_date} is before issue_date "
                               f"{issue_date}")
    if amount is not None and balance is not None and invoice_id and customer and number and issue_date \
            and due_date and not reader.add_to_total(AMOUNTS, amount):
        reader.total_error(row, AMOUNTS)
        amount = None
    if invoice_id and customer and number and issue_date and due_date and amount is not None \
            and balance is not None:
        ledger.invoices[invoice_id] = Invoice(
            invoice_id, customer_id, number, issue_date, due_date, amount, balance, currency,
            row.get("po_number"), row.get("terms"), row.get("description"))
    elif invoice_id:
        reader.invalid_invoices.add(invoice_id)


def _read_lines(reader: _Reader, ledger: Ledger) -> None:
    table = reader.table("invoice_lines.csv", ("invoice_id", "description", "quantity", "unit_price", "amount"),
                         required=False)
    if table is None:
        return
    decimals: dict[str, Decimal] = {}
    fields_of = table.getter("invoice_id", "description", "quantity", "unit_price", "amount")
    invoices, all_lines, totals = ledger.invoices, ledger.lines, reader.totals
    for line, fields in table.records():
        invoice_id, description, quantity_text, price_text, amount_text = fields_of(fields)
        invoice = invoices.get(invoice_id)
        if invoice is not None:
            try:
                quantity = _decimal(quantity_text, decimals) if quantity_text else None
                unit_price = _decimal(price_text, decimals) if price_text else None
                amount = parse_amount(amount_text, invoice.currency)
            except AmountError:
                pass
            else:
                if (total := totals[LINE_AMOUNTS] + amount) <= MAX_MINOR:  # reader.add_to_total, inline
                    totals[LINE_AMOUNTS] = total
                    lines = all_lines.setdefault(invoice_id, [])
                    lines.append(InvoiceLine(invoice_id, len(lines) + 1, description, quantity, unit_price, amount))
                    continue
        _line_row(reader, ledger, table.row(line, fields))


def _line_row(reader: _Reader, ledger: Ledger, row: _Row) -> None:
    invoice_id = row.required("invoice_id")
    invoice = ledger.invoices.get(invoice_id)
    if invoice_id and invoice is None:
        reader.unknown_invoice(row, invoice_id)
    quantity = row.decimal("quantity", "quantity")
    unit_price = row.decimal("unit_price", "price")
    amount = row.amount("amount", invoice.currency) if invoice else None
    if invoice and amount is not None and not reader.add_to_total(LINE_AMOUNTS, amount):
        reader.total_error(row, LINE_AMOUNTS)
        amount = None
    if invoice and amount is not None:
        lines = ledger.lines.setdefault(invoice_id, [])
        lines.append(InvoiceLine(invoice_id, len(lines) + 1, row.get("description"), quantity,
                                 unit_price, amount))


def _read_credits(reader: _Reader, ledger: Ledger) -> None:
    seen: dict[str, int] = {}
    allow_foreign = reader.settings.allow_foreign_currency
    for row in reader.rows("credits.csv", ("credit_id", "customer_id", "number", "issue_date", "amount",
                                           "balance"), required=False):
        credit_id = reader.unique(row, "credit_id", seen)
        customer_id = reader.known_customer(row, ledger)
        customer = ledger.customers.get(customer_id)
        number = row.required("number")
        issue_date = row.date("issue_date")
        currency = reader.currency(row, customer.currency if customer else reader.settings.default_currency)
        if customer and currency and currency != customer.currency and not allow_foreign:
            row.error("currency", f"{currency} differs from the customer's {customer.currency}")
            currency = ""
        amount, balance = row.amount_and_balance(currency, "write a credit as a positive amount")
        if credit_id and customer and number and issue_date and amount is not None and balance is not None \
                and not reader.add_to_total(AMOUNTS, amount):
            reader.total_error(row, AMOUNTS)
            amount = None
        if credit_id and customer and number and issue_date and amount is not None and balance is not None:
            ledger.credits[credit_id] = Credit(credit_id, customer_id, number, issue_date, amount, balance,
                                               currency, row.get("description"))


def _read_documents(reader: _Reader, ledger: Ledger) -> None:
    seen: dict[str, int] = {}
    root = ledger.folder
    for row in reader.rows("documents.csv", ("document_id", "customer_id", "file"), required=False):
        document_id = reader.unique(row, "document_id", seen)
        customer_id = reader.known_customer(row, ledger)
        invoice_id = row.get("invoice_id")
        invoice = ledger.invoices.get(invoice_id)
        if invoice_id and invoice is None:
            reader.unknown_invoice(row, invoice_id)
        elif invoice and invoice.customer_id != customer_id:
            # Attaching one customer's document to another's invoice would publish it to the wrong page.
            row.error("invoice_id", f'"{invoice_id}" belongs to customer "{invoice.customer_id}", '
                                    f'not "{customer_id}"')
        kind = row.get("kind").lower() or "other"
        if kind not in DOCUMENT_KINDS:
            row.error("kind", f'"{kind}" is not one of {", ".join(DOCUMENT_KINDS)}')
        file_text = row.required("file")
        checked = _check_document_file(row, root, file_text) if file_text else None
        if document_id and customer_id in ledger.customers and checked and kind in DOCUMENT_KINDS \
                and (not invoice_id or (invoice and invoice.customer_id == customer_id)):
            sha, size, content_type = checked
            ledger.documents[document_id] = Document(
                document_id, customer_id, file_text, invoice_id, kind,
                row.get("title") or Path(file_text).name, sha, size, content_type)


def _check_document_file(row: _Row, root: Path, file_text: str) -> tuple[str, int, str] | None:
    """Hash a document after making sure it is a regular file inside the export folder."""
    relative = Path(file_text)
    if relative.is_absolute() or file_text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", file_text):
        row.error("file", f'"{file_text}" is an absolute path; give it relative to the export folder')
        return None
    if ".." in relative.parts or ".." in file_text.replace("\\", "/").split("/"):
        row.error("file", f'"{file_text}" leaves the export folder ("..")')
        return None
    path = root / relative
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        row.error("file", f'"{file_text}" does not exist')
        return None
    if not resolved.is_relative_to(root):
        row.error("file", f'"{file_text}" is a link that points outside the export folder')
        return None
    if not resolved.is_file():
        row.error("file", f'"{file_text}" is not a regular file')
        return None
    content_type = DOCUMENT_TYPES.get(relative.suffix.lower())
    if content_type is None:
        row.error("file", f'"{file_text}": type "{relative.suffix or "(none)"}" is not allowed '
                          f"(allowed: {', '.join(sorted(DOCUMENT_TYPES))})")
        return None
    digest = hashlib.sha256()
    size = 0
    with open(resolved, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, content_type
