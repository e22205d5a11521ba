"""The generated PDFs: business documents with embedded Unicode fonts that pypdf reads back strictly, page numbers
and repeated table headers on long invoices, a QR code carrying the signed link, and names that follow exactly
what they show (portal/build/documents.py)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pypdf
import pytest

from portal.build import documents
from portal.build.pages import PageRenderer
from portal.core.signing import Signer
from portal.export.model import Contact, Customer, Invoice, InvoiceLine
from portal.store.database import CustomerData
from tests.conftest import AS_OF, make_settings

SETTINGS = make_settings("sqlite://", company_name="Beispiel Lieferungen GmbH",
                         company_address="Hauptstraße 1\n10115 Berlin", company_tax_id="DE123456789",
                         remit_to="Beispiel Lieferungen GmbH\nPostfach 12 34\n10115 Berlin",
                         bank_details="IBAN DE89 3704 0044 0532 0130 00\nBIC COBADEFFXXX")


def customer_data(customer: Customer, lines: list[tuple[str, int]], amount: int | None = None,
                  balance: int | None = None) -> CustomerData:
    total = sum(a for _, a in lines)
    invoice = Invoice("I1", customer.customer_id, "RE-1001", date(2026, 10, 1), date(2026, 10, 31),
                      total if amount is None else amount, total if balance is None else balance,
                      customer.currency, "PO-77", "Net 30")
    rows = [InvoiceLine("I1", n, text, Decimal(1), Decimal(value) / 100, value) for n, (text, value) in
            enumerate(lines)]
    return CustomerData(customer, 1, AS_OF, [Contact(customer.customer_id, "k1", "ap@example.com", "Anna")],
                        [invoice], {"I1": rows}, [], [])


def planned(data: CustomerData, settings=SETTINGS) -> dict[str, documents.Planned]:
    found: dict[str, documents.Planned] = {}
    PageRenderer(settings).render(data, planned=found)
    return found


def rendered(data: CustomerData, document_id: str = "invoice:I1", settings=SETTINGS) -> pypdf.PdfReader:
    doc = planned(data, settings)[document_id]
    words = PageRenderer(settings).pdf_translations(data.customer.locale)  # as the build and /d/ pass them
    pdf = documents.render(settings, Signer(settings), data.customer.customer_id, 1, doc, *words)
    return pypdf.PdfReader(io.BytesIO(pdf), strict=True)


def text_of(reader: pypdf.PdfReader) -> str:
    return "\n".join(page.extract_text() for page in reader.pages)


JAPANESE = Customer("C-JP", "株式会社サンプル", "JPY", "ja_JP")
GERMAN = Customer("C-DE", "Müller & Söhne GmbH", "EUR", "de_DE")


def test_japanese_invoice_shows_the_yen_sign_and_the_japanese_line():
    text = text_of(rendered(customer_data(JAPANESE, [("技術サポート料金（11月分）", 125000)])))
    assert "技術サポート料金（11月分）" in text
    assert "￥125,000" in text
    assert "株式会社サンプル" in text


def test_german_invoice_shows_mueller_and_the_euro_sign_with_the_letterhead():
    text = text_of(rendered(customer_data(GERMAN, [("Kugellager 6204 – abgedichtet", 123450)])))
    for expected in ("Müller & Söhne GmbH", "1.234,50 €", "Beispiel Lieferungen GmbH", "Hauptstraße 1",
                     "DE123456789", "Postfach 12 34", "IBAN DE89 3704 0044 0532 0130 00", "PO-77", "Net 30",
                     "Rechnung RE-1001", "Offen", "Rechnungsempfänger".upper()):
        assert expected in text, expected


def test_greek_and_cyrillic_text_is_embedded_not_replaced():
    customer = Customer("C-GR", "Αθηναϊκή Εταιρεία · ООО Ромашка", "EUR", "el_GR")
    assert "Αθηναϊκή Εταιρεία · ООО Ромашка" in text_of(rendered(customer_data(customer, [("Υπηρεσίες", 100)])))


def test_totals_show_taxes_and_what_is_paid_and_due_from_the_position():
    # Lines of 100.00 on an invoice of 119.00 (the export carries no tax lines: the rest is taxes and charges),
    # 50.00 of it paid before the export.
    text = text_of(rendered(customer_data(GERMAN, [("Ware", 10000)], amount=11900, balance=6900)))
    for expected in ("Steuern und sonstige Gebühren 19,00 €", "Rechnungsbetrag 119,00 €",
                     "Bezahlt oder gutgeschrieben 50,00 €", "Offen 69,00 €"):
        assert expected in " ".join(text.split()), expected


def test_long_invoice_numbers_its_pages_and_repeats_the_table_header():
    reader = rendered(customer_data(GERMAN, [(f"Position {n}", 1000 + n) for n in range(120)]))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert f"Seite {number} von {len(pages)}" in page, number
    table_pages = [page for page in pages if "Position " in page]
    assert len(table_pages) >= 3
    for page in table_pages:
        assert "Beschreibung Menge Einzelpreis Betrag" in page


def test_the_statement_has_the_statement_lines_and_the_aging():
    text = " ".join(text_of(rendered(customer_data(GERMAN, [("Ware", 10000)]), "statement")).split())
    for expected in ("Kontoauszug", "Anfangssaldo", "Rechnung RE-1001", "Endsaldo 100,00 €",
                     "Noch nicht fällig", "Über 90 Tage"):
        assert expected in text, expected


def test_qr_code_decodes_to_the_signed_link_of_the_invoice():
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    reader = rendered(customer_data(GERMAN, [("Ware", 10000)]))
    [image] = [img for page in reader.pages for img in page.images]
    picture = image.image.convert("L")
    picture = picture.resize((picture.width * 4, picture.height * 4), Image.NEAREST)
    [code] = zxingcpp.read_barcodes(picture)
    prefix = f"{SETTINGS.effective_webhook_url}/l/"
    assert code.text.startswith(prefix)
    claims = Signer(SETTINGS).read_link(code.text.removeprefix(prefix))
    assert (claims.customer_id, claims.invoice_id, claims.key_version) == ("C-DE", "I1", 1)
    assert code.text in text_of(reader)  # the same link, printed for those who cannot scan


def test_name_follows_what_the_invoice_shows_and_nothing_else():
    data = customer_data(GERMAN, [("Ware", 10000)])
    name = planned(data)["invoice:I1"].name
    assert planned(data)["invoice:I1"].name == name
    # The next export, a day later, with the same facts: the same invoice document.
    assert planned(replace(data, as_of=AS_OF + timedelta(days=1)))["invoice:I1"].name == name
    # What it shows changed: a payment (what is due), a line, the letterhead.
    assert planned(replace(data, invoices=[replace(data.invoices[0], balance=5000)]))["invoice:I1"].name != name
    changed_line = {"I1": [replace(data.lines["I1"][0], description="Ware (geändert)")]}
    assert planned(replace(data, lines=changed_line))["invoice:I1"].name != name
    assert planned(data, SETTINGS.replace(bank_details="IBAN DE00"))["invoice:I1"].name != name


def test_without_a_cjk_font_japanese_text_still_renders_a_valid_pdf(monkeypatch):
    from portal.build import fonts

    monkeypatch.setitem(fonts.CANDIDATES, "cjk", ("/nonexistent/cjk.ttf",))
    monkeypatch.setattr(fonts, "_books", {})
    text = text_of(rendered(customer_data(JAPANESE, [("技術サポート", 125000)])))
    assert "RE-1001" in text  # the Latin text is there; the CJK characters print as empty boxes


def test_the_company_logo_is_printed_on_the_letterhead(tmp_path):
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGB", (120, 40), (200, 30, 30)).save(logo)
    reader = rendered(customer_data(GERMAN, [("Ware", 10000)]), settings=SETTINGS.replace(company_logo=str(logo)))
    sizes = sorted(img.image.size for img in reader.pages[0].images)
    assert (120, 40) in sizes and len(sizes) == 2  # the logo and the QR code
