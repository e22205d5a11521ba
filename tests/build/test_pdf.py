"""Rendered PDFs are valid (pypdf reads them strictly), say the right things, and are deterministic."""

from __future__ import annotations

import io
from datetime import date

import pypdf

from portal.build.pdf import invoice_pdf, statement_pdf
from portal.export.model import Customer, Invoice

CUSTOMER = Customer("C1", r"Müller (& Söhne) \ GmbH", "EUR", "de_DE")
INVOICE = Invoice("I1", "C1", "RE-(1)", date(2026, 1, 1), date(2026, 2, 1), 123450, 100000, "EUR", "PO-1", "Net 30")
VIEW = {"issue_text": "01.01.2026", "due_text": "01.02.2026", "amount_text": "1.234,50\xa0€",
        "open_text": "1.000,00\xa0€", "status_text": "Partly paid · overdue 3 days"}


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
                     "Bearing 6204 – sealed", "3,125 €", "6,25 €", "Partly paid · overdue 3 days"):
        assert expected in text, expected
    assert invoice_pdf("Example Supplies", CUSTOMER, INVOICE, lines, VIEW) == data  # deterministic


def test_characters_outside_the_core_fonts_degrade_to_question_marks():
    customer = Customer("C2", "株式会社テスト", "JPY", "ja_JP")
    text = read(invoice_pdf("Co", customer, INVOICE, [], VIEW)).pages[0].extract_text()
    assert "???????" in text


def test_long_statement_flows_onto_more_pages():
    rows = [{"date_text": "01.01.2026", "label": f"Invoice {n}", "amount_text": "1,00\xa0€",
             "running_text": f"{n},00\xa0€"} for n in range(1, 121)]
    aging = [{"label": "Not yet due", "text": "120,00\xa0€"}, {"label": "1–30 days", "text": "0,00\xa0€"}]
    reader = read(statement_pdf("Co", CUSTOMER, "20.11.2026", [{
        "currency": "EUR", "opening_date_text": "01.01.2026", "opening_text": "0,00\xa0€", "rows": rows,
        "closing_text": "120,00\xa0€", "aging": aging}]))
    assert len(reader.pages) == 3
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Opening balance" in text and "Closing balance" in text and "Not yet due" in text
    assert "Invoice 1\n" in text or "Invoice 1 " in text
    assert "Invoice 120" in text and "120,00 €" in text


def test_built_site_pdfs_are_valid(settings, store, export_dir, tmp_path):
    from portal.build.pipeline import build

    out = tmp_path / "site"
    build(export_dir, out, settings, store=store)
    pdfs = list((out / "docs").rglob("*.pdf"))
    assert len(pdfs) > 20
    for path in pdfs:
        assert len(read(path.read_bytes()).pages) >= 1
