"""Rendered PDFs are valid (pypdf reads them strictly), say the right things, and are deterministic."""

from __future__ import annotations

import io
from datetime import date

import pypdf

from portal.ledger import Customer, Invoice
from portal.pdf import invoice_pdf, statement_pdf

CUSTOMER = Customer("C1", r"Müller (& Söhne) \ GmbH", "EUR", "de_DE")
INVOICE = Invoice("I1", "C1", "RE-(1)", date(2026, 1, 1), date(2026, 2, 1), 123450, 100000, "EUR", "PO-1", "Net 30")
VIEW = {"issue_text": "01.01.2026", "due_text": "01.02.2026", "amount_text": "1.234,50\xa0€",
        "open_text": "1.000,00\xa0€"}


def read(data: bytes) -> pypdf.PdfReader:
    return pypdf.PdfReader(io.BytesIO(data), strict=True)


def test_invoice_pdf_reads_back_with_every_field():
    lines = [{"description": "Bearing 6204 – sealed", "quantity_text": "2", "unit_price_text": "3,125\xa0€",
              "amount_text": "6,25\xa0€"}]
    data = invoice_pdf("Example Supplies", CUSTOMER, INVOICE, lines, VIEW)
    reader = read(data)
    assert reader.metadata.title == "Invoice RE-(1)" and len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    for expected in ("Invoice RE-(1)", r"Müller (& Söhne) \ GmbH", "1.234,50 €", "1.000,00 €", "PO-1", "Net 30",
                     "Bearing 6204 – sealed", "3,125 €", "6,25 €"):
        assert expected in text, expected
    assert invoice_pdf("Example Supplies", CUSTOMER, INVOICE, lines, VIEW) == data  # deterministic


def test_characters_outside_the_core_fonts_degrade_to_question_marks():
    customer = Customer("C2", "株式会社テスト", "JPY", "ja_JP")
    text = read(invoice_pdf("Co", customer, INVOICE, [], VIEW)).pages[0].extract_text()
    assert "???????" in text


def test_long_statement_flows_onto_more_pages():
    rows = [{"date_text": "01.01.2026", "label": f"Invoice {n}", "due_text": "01.02.2026",
             "amount_text": "1,00\xa0€", "running_text": f"{n},00\xa0€"} for n in range(1, 121)]
    reader = read(statement_pdf("Co", CUSTOMER, "20.11.2026", [{"currency": "EUR", "rows": rows,
                                                                 "balance_text": "120,00\xa0€"}]))
    assert len(reader.pages) == 3
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Invoice 1\n" in text or "Invoice 1 " in text
    assert "Invoice 120" in text and "120,00 €" in text


def test_built_site_pdfs_are_valid(settings, store, export_dir, tmp_path):
    from portal.site import build

    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    pdfs = list((out / "docs").rglob("*.pdf"))
    assert len(pdfs) > 20
    for path in pdfs:
        assert len(read(path.read_bytes()).pages) >= 1
