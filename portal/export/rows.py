"""The four big files (customers, contacts, invoices, invoice lines), row by row: a fast path and the checks.

A row that is valid as it stands is taken straight into the ledger from its fields (`read_customers` ...); any
other row goes through the checks that name each problem (`customer_row` ...). The fast path only takes a row
those checks would take without a word, with the same effect, so both give the same ledger and the same messages
in the same order (tests/export/test_reader_fastpath.py compares them); it exists because the checks' per-row cost
was most of a full build's serial time at 100,000 invoices.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError

from portal.core.money import MAX_MINOR, AmountError, is_currency, parse_amount, parse_decimal
from portal.export.csvfiles import AMOUNTS, LINE_AMOUNTS, Reader, Row
from portal.export.model import ROLES, Contact, Customer, Invoice, InvoiceLine, Ledger

# Deliberately strict: an address goes into mail headers, so no spaces, commas or line breaks.
EMAIL = re.compile(r"[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"']+")


@lru_cache(maxsize=256)  # a handful of locales, on every customer row
def _is_locale(code: str) -> bool:
    try:
        Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        return False
    return True


def _iso_date(text: str, cache: dict[str, date | None]) -> date | None:
    """The date `Row.date` reads from `text`, or None where it reports a problem. Dates repeat: parsed once."""
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


def read_customers(reader: Reader, ledger: Ledger) -> None:
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
                and (not collector or EMAIL.fullmatch(collector)):
            seen[customer_id] = line
            customers[customer_id] = Customer(customer_id, name, currency, locale, group, collector)
        else:
            customer_row(reader, ledger, table.row(line, fields), seen)


def customer_row(reader: Reader, ledger: Ledger, row: Row, seen: dict[str, int]) -> None:
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
    if collector and not EMAIL.fullmatch(collector):
        row.error("collector", f'"{collector}" is not an email address')
    if customer_id and name and currency and locale:
        ledger.customers[customer_id] = Customer(customer_id, name, currency, locale,
                                                 row.get("group"), collector)
    elif customer_id:
        reader.invalid_customers.add(customer_id)


def read_contacts(reader: Reader, ledger: Ledger) -> None:
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
        if customer_id in customers and email and EMAIL.fullmatch(email) and role in ROLES \
                and (customer_id, contact_id) not in seen:
            seen[customer_id, contact_id] = line
            contacts.append(Contact(customer_id, contact_id, email, name, role))
        else:
            contact_row(reader, ledger, table.row(line, fields), seen)


def contact_row(reader: Reader, ledger: Ledger, row: Row, seen: dict[tuple[str, str], int]) -> None:
    customer_id = reader.known_customer(row, ledger)
    email = row.required("email")
    if email and not EMAIL.fullmatch(email):
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


def read_invoices(reader: Reader, ledger: Ledger) -> None:
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
        invoice_row(reader, ledger, table.row(line, fields), seen)


def invoice_row(reader: Reader, ledger: Ledger, row: Row, seen: dict[str, int]) -> None:
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


def read_lines(reader: Reader, ledger: Ledger) -> None:
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
        line_row(reader, ledger, table.row(line, fields))


def line_row(reader: Reader, ledger: Ledger, row: Row) -> None:
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


