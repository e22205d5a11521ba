"""The export reader's fast path (portal/export/rows.py) against the row checks alone.

The fast path may only take rows the checks would take without a word. Here every row of many damaged
exports goes through both readers, and both must give the same ledger, or the same problems and warnings in
the same order.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portal.core.config import load_settings
from portal.core.errors import ExportInvalid
from portal.export import rows as reader_rows
from portal.export.reader import read_export
from portal.export.sample import write_sample

SETTINGS = load_settings(env={}, config_file=None, secret_key="x" * 32)
FOREIGN = SETTINGS.replace(allow_foreign_currency=True)
AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)

# Values a damaged export might hold, for any column: each is wrong somewhere, and right elsewhere.
BAD_VALUES = ["", " ", "  padded  ", "C00001", "C00002", "C99999", "I000001", "I000002", "I999999", "USD", "eur",
              "XXX", "JPY", "2026-13-01", "2026-02-30", "20261001", "2026-W47-5", "2025-01-01", "2026-10-01",
              "2027-01-01", "1234.50", "1234.5", "1.001", "-5.00", "0", "0.00", "abc", "12,50", "1e3", "99999999.99",
              "de_DE", "xx_YY", "fr_CA", "billing", "APPROVER", "boss", "ap@x.example", "not an email", "a@b",
              "line one\nline two", 'say "hi"', "ünïcödé", "documents/missing.pdf", "../secret.pdf", "/etc/passwd",
              "invoice", "po", "memo",
              # hostile: control characters, digits that are not ASCII, amounts past 64 bits (alone or in sums)
              "Acme\x00 Inc.", "\x1b[31mred", "bell\x07", "tab\there", "\u0661\u0662.\u0660\u0660",
              "\uff11\uff12\uff13", "9" * 5000, "99999999999999999999.00", "46116860184273879.04",
              "92233720368547758.07", "12345678901234567890123456789012345678901"]


def read_by_checks(folder: Path, settings, monkeypatch) -> object:
    """read_export with every row of every file through the checks (`rows.customer_row` ...), no fast path."""
    def slow(name: str, columns: tuple[str, ...], check, required: bool = True, seen: bool = True):
        def read(reader, ledger):
            table = reader.table(name, columns, required)
            if table is None:
                return
            state: dict = {}
            for line, fields in table.records():
                check(reader, ledger, table.row(line, fields), *((state,) if seen else ()))
        return read

    with monkeypatch.context() as patch:
        patch.setattr(reader_rows, "read_customers", slow("customers.csv", ("customer_id", "name"),
                                                          reader_rows.customer_row))
        patch.setattr(reader_rows, "read_contacts", slow("contacts.csv", ("customer_id", "email"),
                                                         reader_rows.contact_row))
        patch.setattr(reader_rows, "read_invoices", slow(
            "invoices.csv", ("invoice_id", "customer_id", "number", "issue_date", "due_date", "amount", "balance"),
            reader_rows.invoice_row))
        patch.setattr(reader_rows, "read_lines", slow(
            "invoice_lines.csv", ("invoice_id", "description", "quantity", "unit_price", "amount"),
            reader_rows.line_row, required=False, seen=False))
        return outcome(folder, settings)


def outcome(folder: Path, settings) -> object:
    try:
        ledger = read_export(folder, settings)
    except ExportInvalid as exc:
        return ("invalid", exc.problems, exc.warnings)
    return ("valid", ledger.as_of, ledger.customers, ledger.contacts, ledger.invoices, ledger.lines, ledger.credits,
            ledger.documents, ledger.warnings)


def damage(folder: Path, rng: random.Random) -> None:
    """Reshape the big files in ways that keep them valid (padding, column order, case, extra columns, blank
    lines, quoted line breaks) and, in half the exports, break a few fields or rows as well."""
    harmful = rng.random() < 0.5
    for name in ("customers.csv", "contacts.csv", "invoices.csv", "invoice_lines.csv"):
        path = folder / name
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        header, body = rows[0], rows[1:]
        for _ in range(rng.randrange(0, 4)):
            row = rng.choice(body)
            column = rng.randrange(len(row))
            row[column] = rng.choice([f"  {row[column]} ", row[column].lower(), f"{row[column]}\n"])
        if header[-1] != "description" and rng.random() < 0.3:
            header, body = [*header, "Extra"], [[*r, rng.choice(BAD_VALUES)] for r in body]
        if rng.random() < 0.3:
            order = rng.sample(range(len(header)), len(header))
            header, body = [header[i].upper() for i in order], [[r[i] for i in order] for r in body]
        if rng.random() < 0.1:
            body.insert(rng.randrange(len(body)), [])  # a blank line
        if harmful:
            for _ in range(rng.randrange(0, 3)):
                row = rng.choice(body)
                if row:
                    row[rng.randrange(len(row))] = rng.choice(BAD_VALUES)
            if rng.random() < 0.2:
                body.insert(rng.randrange(len(body)), list(rng.choice(body)))  # a duplicate row
            if rng.random() < 0.1:
                body.insert(rng.randrange(len(body)), body[0][:-1])  # a short row
            if rng.random() < 0.1:
                column = rng.randrange(len(header))
                header, body = _without(header, column), [_without(r, column) if r else r for r in body]
            if rng.random() < 0.05:
                header = [*header, header[0]]  # a repeated column: the last one counts
                body = [[*r, rng.choice(BAD_VALUES)] if r else r for r in body]
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"])).writerows([header, *body])
        path.write_text(out.getvalue(), encoding="utf-8")


def _without(row: list[str], column: int) -> list[str]:
    return row[:column] + row[column + 1:]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_sample(tmp_path_factory.mktemp("sample") / "export", 30, 150, seed=5, as_of=AS_OF)


def test_a_valid_export_reads_the_same_either_way(pristine, monkeypatch):
    fast = outcome(pristine, SETTINGS)
    assert fast[0] == "valid" and len(fast[4]) == 150
    assert fast == read_by_checks(pristine, SETTINGS, monkeypatch)


@pytest.mark.parametrize("seed", range(150))
def test_a_damaged_export_gives_the_same_ledger_or_the_same_problems_either_way(pristine, tmp_path, seed,
                                                                                monkeypatch):
    rng = random.Random(seed)
    folder = shutil.copytree(pristine, tmp_path / "export")
    damage(folder, rng)
    settings = FOREIGN if seed % 3 == 0 else SETTINGS
    assert outcome(folder, settings) == read_by_checks(folder, settings, monkeypatch)


def _rewrite(path: Path, change) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    change(rows[0], rows)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def test_totals_past_64_bits_are_refused_the_same_either_way(pristine, tmp_path, monkeypatch):
    """Each amount fits in 64 bits, their sum does not: every sum the portal makes (a customer's total, open
    AR) must fit, so the row that makes the export's total overflow is reported, by either path."""
    folder = shutil.copytree(pristine, tmp_path / "export")
    half = "46116860184273879.04"  # 2^62 minor units

    def big_invoices(header, rows):
        for row in rows[3:5]:
            row[header.index("amount")] = row[header.index("balance")] = half

    def big_lines(header, rows):
        for row in rows[1:3]:
            row[header.index("amount")] = half

    _rewrite(folder / "invoices.csv", big_invoices)
    _rewrite(folder / "invoice_lines.csv", big_lines)
    fast = outcome(folder, SETTINGS)
    assert fast[0] == "invalid"
    assert fast[1] == [
        "invoices.csv:5: amount: with the invoice and credit amounts before it, adds up to more than "
        "9223372036854775807 minor units, the most the portal can add up",
        "invoice_lines.csv:3: amount: with the line amounts before it, adds up to more than 9223372036854775807 "
        "minor units, the most the portal can add up"]
    assert fast == read_by_checks(folder, SETTINGS, monkeypatch)


def test_a_control_character_leaves_its_row_out_and_nothing_else_is_reported_the_same_either_way(
        pristine, tmp_path, monkeypatch):
    folder = shutil.copytree(pristine, tmp_path / "export")
    customer, invoice = [], []

    def nul_in_name(header, rows):
        rows[2][header.index("name")] = "Acme\x00 Inc."
        customer.append(rows[2][header.index("customer_id")])

    def esc_in_number(header, rows):
        rows[4][header.index("number")] = "INV-\x1b[2J"
        invoice.append(rows[4][header.index("invoice_id")])

    _rewrite(folder / "customers.csv", nul_in_name)
    _rewrite(folder / "invoices.csv", esc_in_number)
    fast = outcome(folder, SETTINGS)
    assert fast[1] == ["customers.csv:3: name: contains the control character U+0000; remove it",
                       "invoices.csv:5: number: contains the control character U+001B; remove it"]
    assert fast == read_by_checks(folder, SETTINGS, monkeypatch)
    assert customer and invoice  # their contacts, invoices, lines and documents were not reported again


def test_quoted_line_breaks_keep_values_and_line_numbers(tmp_path):
    folder = write_sample(tmp_path / "export", 3, 6, seed=1, as_of=AS_OF)
    path = folder / "invoices.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    rows[1][rows[0].index("description")] = "first line\nsecond line"
    rows[3][rows[0].index("amount")] = "12,50"  # reported at the line its record starts on, after the break
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    with pytest.raises(ExportInvalid) as info:
        read_export(folder, SETTINGS)
    assert info.value.problems == ['invoices.csv:5: amount: "12,50" is not a number (write it like 1234.50)']
    rows[3][rows[0].index("amount")] = rows[3][rows[0].index("balance")]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    assert read_export(folder, SETTINGS).invoices[rows[1][0]].description == "first line\nsecond line"


def test_a_due_date_before_the_issue_date_warns_the_same_either_way(pristine, tmp_path, monkeypatch):
    folder = shutil.copytree(pristine, tmp_path / "export")
    path = folder / "invoices.csv"
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    rows[7][rows[0].index("due_date")] = "2025-01-01"
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    fast = outcome(folder, SETTINGS)
    assert fast[0] == "valid", fast[1]
    assert len(fast[-1]) == 1 and fast[-1][0].startswith("invoices.csv:8: due_date: 2025-01-01")
    assert fast == read_by_checks(folder, SETTINGS, monkeypatch)
