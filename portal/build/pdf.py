"""PDFs the build renders: an invoice (when the export supplied none), the statement of account, and a receipt
per settled payment.

These are plain tables of short texts in the PDF core fonts, so they are written directly: fpdf2 took
about 1 ms a document and made PDFs 80% of a full build (bench/build.py); this writer takes tens of
microseconds. fpdf2 still provides the Helvetica glyph widths used to right-align amounts. The tests read
every PDF back with pypdf.

Core fonts cover Western European text (windows-1252). Characters outside it print as "?": an AR team
billing in other scripts supplies its own invoice PDFs in documents.csv, which always win.
The output is deterministic: unchanged data gives byte-identical files.
"""

from __future__ import annotations

import zlib

from fpdf.fonts import CORE_FONTS_CHARWIDTHS

from portal.export.model import Customer, Invoice

MM = 72 / 25.4  # points per millimetre
PAGE_W, PAGE_H = 210.0, 297.0  # A4, mm
MARGIN, BOTTOM = 10.0, 18.0
ROW = 6.0
LINE = 4.0  # each further line of a wrapped cell
_FONTS = {"regular": ("F1", "Helvetica", CORE_FONTS_CHARWIDTHS["helvetica"]),
          "bold": ("F2", "Helvetica-Bold", CORE_FONTS_CHARWIDTHS["helveticaB"])}


def _encode(value: str) -> bytes:
    # Babel uses narrow and ordinary no-break spaces as group separators (fr_CA: "1 234,50 $").
    value = value.replace("\u202f", " ").replace("\u00a0", " ").replace("\r", " ").replace("\n", " ")
    return value.encode("cp1252", "replace")


class _Doc:
    """A4 pages of positioned text and rules; positions in mm from the top-left corner."""

    def __init__(self, title: str):
        self.title = title
        self.pages: list[list[bytes]] = []
        self.style, self.size = "regular", 9.0
        self.add_page()

    def add_page(self) -> None:
        self.ops: list[bytes] = []
        self.pages.append(self.ops)
        self.y = MARGIN

    def set_font(self, style: str, size: float) -> None:
        self.style, self.size = style, size

    def width(self, raw: bytes) -> float:
        widths = _FONTS[self.style][2]
        return sum(widths[chr(b)] for b in raw) * self.size / 1000 / MM

    def text(self, x: float, baseline: float, raw: bytes) -> None:
        escaped = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        self.ops.append(b"BT /%s %.1f Tf %.2f %.2f Td (%s) Tj ET" % (
            _FONTS[self.style][0].encode(), self.size, x * MM, (PAGE_H - baseline) * MM, escaped))

    def rule(self, y: float) -> None:
        self.ops.append(b"%.2f %.2f m %.2f %.2f l S" % (MARGIN * MM, (PAGE_H - y) * MM, (PAGE_W - MARGIN) * MM,
                                                          (PAGE_H - y) * MM))

    def line_of_text(self, value: str, height: float) -> None:
        self.text(MARGIN, self.y + height * 0.7, _encode(value)[:110])
        self.y += height

    def heading(self, company: str, title: str, customer: Customer) -> None:
        self.set_font("bold", 16)
        self.line_of_text(title, 9)
        self.set_font("regular", 10)
        self.line_of_text(f"From: {company}", 5)
        self.line_of_text(f"To: {customer.name} (account {customer.customer_id})", 5)
        self.y += 4

    def row(self, cells: list[tuple[str, float, str]], bold: bool = False) -> None:
        """One table row; a width of 0 takes the rest of the line, "R" right-aligns (amounts). A text too wide for
        its cell wraps onto more lines of the row (at spaces; a word wider than the cell is cut)."""
        self.set_font("bold" if bold else "regular", 9)
        x, placed = MARGIN, []
        for value, width, align in cells:
            width = width or (PAGE_W - MARGIN - x)
            placed.append((x, width, align, self._wrap(_encode(value)[:300], width - 2)))
            x += width
        height = ROW + LINE * (max(len(lines) for *_, lines in placed) - 1)
        if self.y + height > PAGE_H - BOTTOM:
            self.add_page()
        for x, width, align, lines in placed:
            for n, raw in enumerate(lines):
                self.text(x + width - 1 - self.width(raw) if align == "R" else x + 1, self.y + 4.2 + n * LINE, raw)
        self.rule(self.y + height)
        self.y += height

    def _wrap(self, raw: bytes, room: float) -> list[bytes]:
        lines, line = [], b""
        for word in raw.split(b" "):
            candidate = line + b" " + word if line else word
            if self.width(candidate) <= room or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
            while self.width(line) > room and len(line) > 1:  # one word wider than the cell: cut it
                cut = len(line)
                while cut > 1 and self.width(line[:cut]) > room:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        return [*lines, line]

    def output(self) -> bytes:
        """Serialise: catalog, page tree, fonts, then each page with its (compressed) content stream."""
        objects: list[bytes] = []
        page_ids = [6 + 2 * i for i in range(len(self.pages))]
        objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
        objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
            b" ".join(b"%d 0 R" % i for i in page_ids), len(page_ids)))
        for _key, name, _widths in _FONTS.values():
            objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
                           % name.encode())
        title = b"<FEFF" + self.title.encode("utf-16-be").hex().upper().encode() + b">"
        objects.append(b"<< /Title %s /Producer (ar-portal) >>" % title)
        for index, ops in enumerate(self.pages):
            objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Resources << /Font "
                           b"<< /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>"
                           % (PAGE_W * MM, PAGE_H * MM, page_ids[index] + 1))
            stream = zlib.compress(b"0.6 w\n" + b"\n".join(ops))
            objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream))
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
        return bytes(out)


def invoice_pdf(company: str, customer: Customer, invoice: Invoice, lines: list[dict], view: dict) -> bytes:
    """`view` and `lines` carry the texts the invoice page shows, already formatted for the customer's locale."""
    doc = _Doc(f"Invoice {invoice.number}")
    doc.heading(company, f"Invoice {invoice.number}", customer)
    facts = [("Issued", view["issue_text"]), ("Due", view["due_text"]), ("Total", view["amount_text"]),
             ("Open", view["open_text"]), ("Status", view["status_text"])]
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
            doc.row([(ln["description"], 95, "L"), (ln["quantity_text"], 20, "R"), (ln["unit_price_text"], 35, "R"),
                     (ln["amount_text"], 0, "R")])
        doc.row([("Total", 150, "L"), (view["amount_text"], 0, "R")], bold=True)
    return doc.output()


def statement_pdf(company: str, customer: Customer, as_of_text: str, statements: list[dict]) -> bytes:
    """The lines of portal.balances.statement, as the statement page shows them: opening balance, each line with its
    running balance, closing balance and aging, per currency."""
    doc = _Doc("Statement of account")
    doc.heading(company, "Statement of account", customer)
    doc.set_font("regular", 10)
    doc.line_of_text(f"As of {as_of_text}", 5)
    doc.y += 3
    if not statements:
        doc.line_of_text("Nothing is open.", 6)
    for block in statements:
        doc.set_font("bold", 12)
        doc.line_of_text(block["currency"], 8)
        doc.row([("Date", 24, "L"), ("Description", 114, "L"), ("Amount", 26, "R"), ("Balance", 0, "R")], bold=True)
        doc.row([(block["opening_date_text"], 24, "L"), ("Opening balance", 114, "L"), ("", 26, "R"),
                 (block["opening_text"], 0, "R")])
        for r in block["rows"]:
            doc.row([(r["date_text"], 24, "L"), (r["label"], 114, "L"), (r["amount_text"], 26, "R"),
                     (r["running_text"], 0, "R")])
        doc.row([("Closing balance", 160, "L"), (block["closing_text"], 0, "R")], bold=True)
        doc.y += 2
        doc.row([(cell["label"], 31, "L") for cell in block["aging"]], bold=True)
        doc.row([(cell["text"], 31, "L") for cell in block["aging"]])
        doc.y += 3
    return doc.output()


def receipt_pdf(company: str, customer: Customer, view: dict) -> bytes:
    """A settled payment's receipt: the texts its page shows (portal/build/receipts.py, already formatted)."""
    doc = _Doc(f"Payment receipt {view['reference']}")
    doc.heading(company, "Payment receipt", customer)
    facts = [("Reference", view["reference"]), ("Paid on", view["settled_text"] or view["date_text"]),
             ("Method", "Card" if view["method"] == "card" else "Bank transfer (ACH)"),
             ("Amount paid", view["amount_text"])]
    if view["refunded_text"]:
        facts.append(("Refunded", view["refunded_text"]))
    for label, value in facts:
        doc.row([(label, 40, "L"), (value, 0, "L")])
    doc.y += 4
    doc.row([("Applied to", 150, "L"), ("Amount", 0, "R")], bold=True)
    for line in view["invoices"]:
        doc.row([(f"Invoice {line['number']}", 150, "L"), (line["amount_text"], 0, "R")])
    for line in view["credits"]:
        doc.row([(f"Credit note {line['number']} used", 150, "L"), ("-" + line["amount_text"], 0, "R")])
    if view["adjustment"]:
        doc.row([("Bank payment discount" if view["adjustment"] < 0 else "Payment method fee", 150, "L"),
                 (("-" if view["adjustment"] < 0 else "") + view["adjustment_text"], 0, "R")])
    if view["unapplied_text"]:
        doc.row([("Received beyond what the invoices owed (our team applies it)", 150, "L"),
                 (view["unapplied_text"], 0, "R")])
    doc.row([("Total paid", 150, "L"), (view["amount_text"], 0, "R")], bold=True)
    return doc.output()
