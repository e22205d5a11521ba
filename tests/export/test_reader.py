"""The export reader: every validation README.md lists ("Input: the AR export"), each reported as
file:line: column: message."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portal.core.config import load_settings
from portal.core.errors import ExportInvalid
from portal.export import reader
from portal.export.reader import read_export

SETTINGS = load_settings(env={}, config_file=None, secret_key="x" * 32)

CUSTOMERS = ("customer_id,name,currency,locale,collector\n"
             "C1,Acme Inc.,USD,en_US,dana@example.com\nC2,Beta GmbH,EUR,de_DE,\n")
CONTACTS = "customer_id,email,role\nC1,ap@acme.example,billing\nC2,ap@beta.example,approver\n"
INVOICES = ("invoice_id,customer_id,number,issue_date,due_date,amount,balance,po_number\n"
            "I1,C1,INV-1,2026-10-01,2026-10-31,1234.50,1000.00,PO-9\n"
            "I2,C2,INV-2,2026-10-05,2026-11-04,99.99,99.99,\n")


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    base = {"customers.csv": CUSTOMERS, "contacts.csv": CONTACTS, "invoices.csv": INVOICES}
    for name, text in {**base, **{k.replace("_csv", ".csv"): v for k, v in files.items()}}.items():
        if text is None:
            continue
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    with pytest.raises(ExportInvalid) as info:
        read_export(folder, SETTINGS)
    assert info.value.exit_code == 2
    return info.value.problems


def test_a_valid_export_reads_amounts_as_minor_units(tmp_path):
    ledger = read_export(write(tmp_path), SETTINGS)
    assert ledger.invoices["I1"].amount == 123450 and ledger.invoices["I1"].balance == 100000
    assert ledger.invoices["I2"].currency == "EUR"  # defaults to the customer's currency
    assert ledger.customers["C2"].locale == "de_DE"
    assert [c.role for c in ledger.contacts] == ["billing", "approver"]
    assert ledger.warnings == []


def test_amount_with_a_comma_is_refused_with_file_line_and_column(tmp_path):
    folder = write(tmp_path, invoices_csv=INVOICES.replace("1234.50", '"12,50"'))
    assert problems(folder) == ['invoices.csv:2: amount: "12,50" is not a number (write it like 1234.50)']


def test_all_errors_are_reported_together(tmp_path):
    folder = write(tmp_path, invoices_csv=(
        "invoice_id,customer_id,number,issue_date,due_date,amount,balance\n"
        "I1,C1,INV-1,2026-13-01,2026-10-31,10.00,20.00\n"
        "I1,C9,,2026-10-01,2026-10-31,abc,-1.00\n"
        ",C1,INV-3,2026-10-01,2026-10-31,1.001,1.00\n"))
    assert problems(folder) == [
        'invoices.csv:2: issue_date: "2026-13-01" is not a date (write it as YYYY-MM-DD)',
        "invoices.csv:2: balance: is larger than amount",
        'invoices.csv:3: invoice_id: "I1" is a duplicate of line 2',
        'invoices.csv:3: customer_id: "C9" is not in customers.csv',
        "invoices.csv:3: number: is empty",
        'invoices.csv:3: amount: "abc" is not a number (write it like 1234.50)',
        "invoices.csv:3: balance: is negative",
        "invoices.csv:4: invoice_id: is empty",
        'invoices.csv:4: amount: "1.001" has more than 2 decimals for USD',
    ]


def test_negative_balance_and_missing_files_and_columns(tmp_path):
    folder = write(tmp_path, contacts_csv=None, invoices_csv=(
        "invoice_id,customer_id,number,issue_date,due_date,amount\nI1,C1,INV-1,2026-10-01,2026-10-31,10.00\n"))
    (folder / "contacts.csv").unlink(missing_ok=True)
    assert problems(folder) == ["contacts.csv: required file is missing",
                                "invoices.csv:1: balance: required column is missing"]
    folder = write(tmp_path / "b", invoices_csv=INVOICES.replace("1000.00", "-5.00"))
    assert problems(folder) == ["invoices.csv:2: balance: is negative"]


def test_currency_checks(tmp_path):
    bad = write(tmp_path / "a", customers_csv=CUSTOMERS.replace("EUR", "EURO"))
    assert problems(bad) == ['customers.csv:3: currency: "EURO" is not an ISO 4217 currency code']
    mismatch = INVOICES.replace("po_number\n", "po_number,currency\n").replace("PO-9\n", "PO-9,GBP\n") \
        .replace("99.99,\n", "99.99,,\n")
    assert problems(write(tmp_path / "b", invoices_csv=mismatch)) == [
        "invoices.csv:2: currency: GBP differs from the customer's USD (set allow_foreign_currency = true to allow it)"]
    allowed = read_export(tmp_path / "b", SETTINGS.replace(allow_foreign_currency=True))
    assert allowed.invoices["I1"].currency == "GBP"
    yen = write(tmp_path / "c", customers_csv="customer_id,name,currency\nC1,A,JPY\nC2,B,EUR\n",
                invoices_csv=INVOICES.replace("1234.50", "1234").replace("1000.00", "1000"))
    assert read_export(yen, SETTINGS).invoices["I1"].amount == 1234  # JPY has no minor unit


def test_unknown_references_and_bad_contacts(tmp_path):
    folder = write(tmp_path, contacts_csv="customer_id,email,role\nC1,not-an-email,billing\nC7,a@b.example,\n"
                                          "C1,x@y.example,boss\nC1,\"a@b.example\nBcc: evil@x.example\",billing\n",
                   invoice_lines_csv="invoice_id,description,quantity,unit_price,amount\nI9,Widget,1,2,2.00\n"
                                     "I1,Widget,one,2,2.00\n",
                   credits_csv="credit_id,customer_id,number,issue_date,amount,balance\nK1,C1,CM-1,2026-10-01,5.00,6.00\n")
    assert problems(folder) == [
        'contacts.csv:2: email: "not-an-email" is not an email address',
        'contacts.csv:3: customer_id: "C7" is not in customers.csv',
        'contacts.csv:4: role: "boss" is not one of billing, approver, other',
        'contacts.csv:5: email: "a@b.example\nBcc: evil@x.example" is not an email address',
        'invoice_lines.csv:2: invoice_id: "I9" is not in invoices.csv',
        'invoice_lines.csv:3: quantity: "one" is not a quantity',
        "credits.csv:2: balance: is larger than amount",
    ]


def test_documents_must_stay_inside_the_export_folder(tmp_path):
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(b"%PDF-1.4 secret")
    folder = write(tmp_path / "export")
    (folder / "docs").mkdir()
    (folder / "docs" / "po.pdf").write_bytes(b"%PDF-1.4 po")
    (folder / "docs" / "page.html").write_text("<script>alert(1)</script>")
    os.symlink(outside, folder / "docs" / "link.pdf")
    folder = write(folder, documents_csv=(
        "document_id,customer_id,file,invoice_id,kind\n"
        "D1,C1,docs/po.pdf,I1,po\n"
        "D2,C1,../secret.pdf,,other\n"
        f"D3,C1,{outside},,other\n"
        "D4,C1,docs/link.pdf,,other\n"
        "D5,C1,docs/missing.pdf,,other\n"
        "D6,C1,docs/po.pdf,I2,po\n"
        "D7,C1,docs/page.html,,other\n"
        "D8,C1,docs/po.pdf,,memo\n"))
    assert problems(folder) == [
        'documents.csv:3: file: "../secret.pdf" leaves the export folder ("..")',
        f'documents.csv:4: file: "{outside}" is an absolute path; give it relative to the export folder',
        'documents.csv:5: file: "docs/link.pdf" is a link that points outside the export folder',
        'documents.csv:6: file: "docs/missing.pdf" does not exist',
        'documents.csv:7: invoice_id: "I2" belongs to customer "C2", not "C1"',
        'documents.csv:8: file: "docs/page.html": type ".html" is not allowed (allowed: .csv, .doc, .docx, .gif, '
        '.jpeg, .jpg, .pdf, .png, .tif, .tiff, .txt, .webp, .xls, .xlsx, .xml, .zip)',
        'documents.csv:9: kind: "memo" is not one of invoice, po, contract, delivery, statement, other',
    ]


def test_invalid_utf8_names_the_line(tmp_path):
    folder = write(tmp_path)
    (folder / "customers.csv").write_bytes(CUSTOMERS.encode() + b"C3,Caf\xe9 Ltd,USD,en_US,\n")
    assert problems(folder) == ["customers.csv:4: not valid UTF-8 (byte 0xe9); save the export as UTF-8"]


def test_warnings_are_not_fatal(tmp_path):
    folder = write(tmp_path, customers_csv=CUSTOMERS + "C3,Lonely LLC,USD,en_US,\n",
                   invoices_csv=INVOICES.replace("2026-10-31", "2026-09-01"))
    ledger = read_export(folder, SETTINGS)
    assert ledger.warnings == ["invoices.csv:2: due_date: 2026-09-01 is before issue_date 2026-10-01",
                               'customers.csv: customer "C3" has no contacts: no one can be sent a link']


def test_as_of_from_export_json_or_newest_file(tmp_path):
    folder = write(tmp_path)
    stamp = datetime(2026, 11, 19, 7, 30, tzinfo=UTC).timestamp()
    for path in folder.iterdir():
        os.utime(path, (stamp, stamp))
    assert read_export(folder, SETTINGS).as_of == datetime(2026, 11, 19, 7, 30, tzinfo=UTC)
    (folder / "export.json").write_text('{"as_of": "2026-11-20T18:00:00Z"}')
    assert read_export(folder, SETTINGS).as_of == datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    (folder / "export.json").write_text('{"as_of": "2026-11-20T18:00:00"}')
    assert problems(folder) == ['export.json:1: as_of: "2026-11-20T18:00:00" has no time zone (add Z for UTC)']


def test_header_is_case_and_space_tolerant_and_extra_columns_ignored(tmp_path):
    folder = write(tmp_path,
                   customers_csv="\ufeffCustomer_ID , Name,Currency,erp_field\nC1,Acme,USD,x\nC2,Beta,EUR,y\n")
    ledger = read_export(folder, SETTINGS)
    assert ledger.customers["C1"].name == "Acme" and ledger.customers["C1"].locale == "en_US"


def test_a_short_row_is_reported(tmp_path):
    folder = write(tmp_path, contacts_csv=CONTACTS + "C1\n")
    assert problems(folder) == ["contacts.csv:4: the row has 1 fields, the header has 3"]


def test_the_reader_files_are_every_module_that_decides_what_an_export_reads_as():
    """A build skips reading an export whose fingerprint it has seen (portal/build/pipeline.py), and the fingerprint
    covers the code of READER_FILES: a check changed in any module of the reader must make the next build read the
    export again."""
    folder = Path(reader.__file__).parent
    modules = {p.resolve() for p in folder.glob("*.py") if p.name not in ("__init__.py", "sample.py")}
    assert {p.resolve() for p in reader.READER_FILES} == modules
    assert {p.name for p in modules} >= {"model.py", "csvfiles.py", "rows.py", "reader.py"}
