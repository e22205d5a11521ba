"""PDFs the build renders: an invoice (when the export supplied none) and the statement of account.

fpdf2 with its built-in Helvetica keeps this fast (about 1 ms a page) and needs no font files; those
fonts cover Western European text (windows-1252). Characters outside it print as "?": an AR team billing
in other scripts supplies its own invoice PDFs in documents.csv, which always win.
The output is deterministic (fixed creation date), so unchanged data gives byte-identical files.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fpdf import FPDF

from .ledger import Customer, Invoice, InvoiceLine
from .money import format_money, format_price, format_quantity

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _text(value: str) -> str:
    # Babel uses narrow and ordinary no-break spaces as group separators (fr_CA: "1 234,50 $").
    value = value.replace("\u202f", " ").replace("\u00a0", " ")
    return value.encode("cp1252", "replace").decode("cp1252")


class _Doc(FPDF):
    def __init__(self, title: str):
        super().__init__(format="A4")
        self.core_fonts_encoding = "windows-1252"  # has the euro sign and typographic dashes; latin-1 has not
        self.set_creation_date(_EPOCH)
        self.set_title(_text(title))
        self.set_auto_page_break(True, margin=18)
        self.add_page()

    def heading(self, company: str, title: str, customer: Customer) -> None:
        self.set_font("Helvetica", "B", 16)
        self.line_of_text(_text(title), 9)
        self.set_font("Helvetica", size=10)
        self.line_of_text(_text(f"From: {company}"), 5)
        self.line_of_text(_text(f"To: {customer.name} (account {customer.customer_id})"), 5)
        self.y += 4

    def line_of_text(self, value: str, height: float) -> None:
        self.text(self.l_margin, self.y + height * 0.7, value[:110])
        self.y += height

    def row(self, cells: list[tuple[str, float, str]], bold: bool = False) -> None:
        """One table row. `text()` instead of `cell()`: cells run fpdf2's line-breaking machinery, which
        made PDFs 70% of the build's time; a table of short texts needs none of it."""
        if self.y + 6 > self.h - self.b_margin:
            self.add_page()
        self.set_font("Helvetica", "B" if bold else "", 9)
        x, baseline = self.l_margin, self.y + 4.2
        usable = self.w - self.l_margin - self.r_margin
        for text, width, align in cells:
            width = width or (self.l_margin + usable - x)
            value = _text(text)[:90]
            if align == "R":
                self.text(x + width - 1 - self.get_string_width(value), baseline, value)
            else:
                self.text(x + 1, baseline, value)
            x += width
        self.line(self.l_margin, self.y + 6, self.l_margin + usable, self.y + 6)
        self.y += 6


def invoice_pdf(company: str, customer: Customer, invoice: Invoice, lines: list[InvoiceLine],
                view: dict) -> bytes:
    """`view` carries the texts already formatted for the customer's locale (amounts, dates)."""
    doc = _Doc(f"Invoice {invoice.number}")
    doc.heading(company, f"Invoice {invoice.number}", customer)
    facts = [("Issued", view["issue_text"]), ("Due", view["due_text"]), ("Total", view["amount_text"]),
             ("Open", view["open_text"])]
    if invoice.po_number:
        facts.append(("Your PO", invoice.po_number))
    if invoice.terms:
        facts.append(("Terms", invoice.terms))
    for label, value in facts:
        doc.row([(label, 40, "L"), (value, 0, "L")])
    doc.y += 4
    if lines:
        doc.row([("Description", 95, "L"), ("Qty", 20, "R"), ("Unit price", 35, "R"), ("Amount", 0, "R")], bold=True)
        for ln in lines:
            doc.row([(ln.description, 95, "L"), (format_quantity(ln.quantity, customer.locale), 20, "R"),
                     (format_price(ln.unit_price, invoice.currency, customer.locale), 35, "R"),
                     (format_money(ln.amount, invoice.currency, customer.locale), 0, "R")])
        doc.row([("Total", 150, "L"), (view["amount_text"], 0, "R")], bold=True)
    return bytes(doc.output())


def statement_pdf(company: str, customer: Customer, as_of_text: str, statements: list[dict]) -> bytes:
    doc = _Doc("Statement of account")
    doc.heading(company, "Statement of account", customer)
    doc.set_font("Helvetica", size=10)
    doc.line_of_text(_text(f"Balances as of {as_of_text}"), 5)
    doc.y += 3
    if not statements:
        doc.line_of_text("Nothing is open.", 6)
    for block in statements:
        doc.set_font("Helvetica", "B", 12)
        doc.line_of_text(block["currency"], 8)
        doc.row([("Date", 28, "L"), ("Document", 62, "L"), ("Due", 28, "L"), ("Open", 35, "R"),
                 ("Balance", 0, "R")], bold=True)
        for r in block["rows"]:
            doc.row([(r["date_text"], 28, "L"), (r["label"], 62, "L"), (r["due_text"], 28, "L"),
                     (r["amount_text"], 35, "R"), (r["running_text"], 0, "R")])
        doc.row([("Balance", 153, "L"), (block["balance_text"], 0, "R")], bold=True)
        doc.y += 3
    return bytes(doc.output())
