"""The invoice, statement and receipt PDFs: business documents laid out by fpdf2 with embedded, subset Unicode
fonts.

What a document shows is one JSON-able `payload` (portal/build/documents.py builds it from what the pages show,
amounts and statuses from portal/balances), plus the payment link and its QR code, which are made when the PDF is
rendered (a fresh signed link, valid `link_ttl_days` from then). Every word a customer reads goes through the
`gettext`/`ngettext` callables passed in (identity by default), so the translation catalogs apply as they do to
the pages. Long invoices and statements flow over pages with the table's header row repeated and "Page n of N"
on each page. Why fpdf2, and what it costs: docs/documents.md.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import segno
from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from portal.build.fonts import FontBook
from portal.payments.pricing import METHODS

Gettext = Callable[[str], str]
Ngettext = Callable[[str, str, int], str]
MARGIN = 15.0
GREY = (90, 90, 90)
LIGHT = (235, 238, 242)
NUMBERS = ("LEFT", "RIGHT", "RIGHT", "RIGHT")


def _identity(text: str) -> str:
    return text


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _plain(value: str) -> str:
    # Babel groups digits with no-break spaces (fr: "1 234,50 €"); a cell wraps only where the text has room.
    return value.replace("\u202f", " ").replace("\u00a0", " ")


class _Paper(FPDF):
    """A4 with the footer every page carries: company, contact, page n of N."""

    footer_text = ""
    page_text = "Page %(page)s of %(pages)s"

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Text", "", 7.5)
        self.set_text_color(*GREY)
        self.cell(0, 4, self.footer_text, align="L")
        self.set_x(MARGIN)
        self.cell(0, 4, self.page_text % {"page": self.page_no(), "pages": self.alias_nb_pages_text},
                  align="R")
        self.set_text_color(0, 0, 0)

    alias_nb_pages_text = "{nb}"


class Writer:
    """One document: fonts, letterhead, blocks of facts, tables, the payment box."""

    def __init__(self, fonts: FontBook, payload: dict, gettext: Gettext, ngettext: Ngettext):
        self.payload, self._, self.ngettext = payload, gettext, ngettext
        self.pdf = pdf = _Paper(format="A4")
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        pdf.set_auto_page_break(True, margin=18)
        pdf.alias_nb_pages()
        fonts.install(pdf, needs_cjk=not fonts.covers(_all_text(payload)))
        company = payload["company"]
        pdf.footer_text = _plain(" · ".join(p for p in (company["name"], company["support_email"]) if p))
        pdf.page_text = gettext("Page %(page)s of %(pages)s")
        pdf.set_lang(payload["lang"])
        pdf.set_creator("ar-portal")
        pdf.set_creation_date(datetime.now(UTC).replace(microsecond=0))
        pdf.add_page()

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font("Text", "B" if bold else "", size)

    def letterhead(self, title: str, logo: bytes | None) -> None:
        """Company (logo, name, address, tax id) on the left, the document's title on the right."""
        pdf, company = self.pdf, self.payload["company"]
        top = pdf.get_y()
        if logo:
            pdf.image(io.BytesIO(logo), x=MARGIN, y=top, h=14)
            pdf.set_y(top + 16)
        self.font(13, True)
        pdf.multi_cell(100, 6, _plain(company["name"]), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.font(8.5)
        for line in company["address"]:
            pdf.multi_cell(100, 4, _plain(line), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if company["tax_id"]:
            pdf.multi_cell(100, 4, _plain(self._("Tax ID: %(tax_id)s") % {"tax_id": company["tax_id"]}),
                           align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        bottom = pdf.get_y()
        pdf.set_xy(115, top)
        self.font(18, True)
        pdf.multi_cell(80, 9, _plain(title), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_y(max(bottom, pdf.get_y()) + 6)

    def two_blocks(self, left_title: str, left: list[str], right: list[tuple[str, str]]) -> None:
        """Bill-to (lines of text) on the left, labelled facts on the right."""
        pdf = self.pdf
        top = pdf.get_y()
        self.font(8, True)
        pdf.cell(90, 5, _plain(left_title).upper(), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.font(9.5)
        for line in left:
            pdf.multi_cell(90, 5, _plain(line), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        bottom = pdf.get_y()
        pdf.set_y(top)
        for label, value in right:
            pdf.set_x(115)
            self.font(8.5, True)
            pdf.cell(35, 5, _plain(label))
            self.font(8.5)
            pdf.multi_cell(45, 5, _plain(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_y(max(bottom, pdf.get_y()) + 6)

    def table(self, header: tuple[str, ...], rows: list[tuple[str, ...]], widths: tuple[int, ...],
              bold_rows: frozenset[int] = frozenset(), align: tuple[str, ...] = NUMBERS) -> None:
        """A table whose header row is repeated at the top of every page it runs onto."""
        self.font(8.5)
        heading = FontFace(emphasis="BOLD", fill_color=LIGHT)
        with self.pdf.table(col_widths=widths, text_align=align, line_height=5,
                            headings_style=heading, borders_layout=TableBordersLayout.HORIZONTAL_LINES,
                            repeat_headings=1, padding=(1, 1.5)) as table:
            table.row([_plain(h) for h in header])
            for index, cells in enumerate(rows):
                table.row([_plain(c) for c in cells], style=FontFace(emphasis="BOLD") if index in bold_rows
                          else None)
        self.pdf.ln(4)

    def totals(self, rows: list[tuple[str, str]], strong: int = -1) -> None:
        """Label-amount pairs aligned to the right edge (totals, amount due)."""
        pdf = self.pdf
        for index, (label, value) in enumerate(rows):
            self.font(9.5, index == strong % len(rows))
            pdf.set_x(105)
            pdf.cell(55, 6, _plain(label), align="R")
            pdf.cell(35, 6, _plain(value), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(4)

    def paragraph(self, title: str, lines: list[str]) -> None:
        if not lines:
            return
        pdf = self.pdf
        self.font(8, True)
        pdf.cell(0, 5, _plain(title).upper(), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.font(9)
        for line in lines:
            pdf.multi_cell(0, 4.5, _plain(line), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)

    def pay_box(self, heading: str, link: str) -> None:
        """How to pay from the paper: the customer's page as a link and as a QR code."""
        pdf = self.pdf
        if pdf.get_y() + 40 > pdf.h - 18:
            pdf.add_page()
        top = pdf.get_y()
        qr = io.BytesIO()
        segno.make(link, error="m").save(qr, kind="png", scale=4, border=4)
        pdf.image(io.BytesIO(qr.getvalue()), x=MARGIN, y=top, w=32, h=32)
        pdf.set_xy(MARGIN + 36, top + 2)
        self.font(10, True)
        pdf.multi_cell(0, 5, _plain(heading), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_x(MARGIN + 36)
        self.font(8.5)
        pdf.multi_cell(0, 4.5, self._("Scan the code or open this address to see what is open, pay by card or "
                                      "bank transfer, or ask a question:"),
                       align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_x(MARGIN + 36)
        pdf.set_text_color(20, 70, 160)
        self.font(7.5)
        pdf.multi_cell(0, 4, link, link=link, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
        pdf.set_y(max(top + 34, pdf.get_y() + 2))

    def payment_details(self) -> None:
        self.paragraph(self._("Remit to"), self.payload["remit_to"])
        self.paragraph(self._("Bank details"), self.payload["bank_details"])

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _all_text(payload: object) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        return " ".join(_all_text(v) for v in payload.values())
    if isinstance(payload, list | tuple):
        return " ".join(_all_text(v) for v in payload)
    return ""


def invoice_pdf(fonts: FontBook, payload: dict, link: str, logo: bytes | None = None,
                gettext: Gettext = _identity, ngettext: Ngettext = _plural) -> bytes:
    """The invoice as a business document (payload: portal.build.documents.invoice_payload)."""
    _ = gettext
    doc = Writer(fonts, payload, gettext, ngettext)
    title = _("Invoice %(number)s") % {"number": payload["number"]}
    doc.pdf.set_title(title)
    doc.letterhead(title, logo)
    customer = payload["customer"]
    facts = [(_("Invoice number"), payload["number"]), (_("Issue date"), payload["issue_text"]),
             (_("Due date"), payload["due_text"])]
    if payload["po_number"]:
        facts.append((_("Your PO"), payload["po_number"]))
    if payload["terms"]:
        facts.append((_("Terms"), payload["terms"]))
    facts.append((_("Account"), customer["id"]))
    doc.two_blocks(_("Bill to"), [customer["name"], *customer["lines"]], facts)
    if payload["description"]:
        doc.paragraph(_("Description"), [payload["description"]])
    lines = payload["lines"]
    if lines:
        doc.table((_("Description"), _("Qty"), _("Unit price"), _("Amount")),
                  [(ln["description"], ln["quantity_text"], ln["unit_price_text"], ln["amount_text"]) for ln in lines],
                  (95, 20, 32, 33))
    totals = []
    if lines:
        totals.append((ngettext("Total of %(count)d line", "Total of %(count)d lines", len(lines))
                       % {"count": len(lines)}, payload["lines_total_text"]))
        if payload["other_text"]:
            totals.append((_("Taxes and other charges"), payload["other_text"]))
    totals.append((_("Invoice total"), payload["amount_text"]))
    if payload["settled_text"]:
        totals.append((_("Paid or credited"), payload["settled_text"]))
    totals.append((_("Open"), payload["open_text"]))
    if payload["due_amount_text"] != payload["open_text"]:  # part of it pending, disputed or promised
        totals.append((_("Amount due now"), payload["due_amount_text"]))
    totals.append((_("Status"), payload["status_text"]))
    doc.totals(totals, strong=len(totals) - 2)
    doc.pay_box(_("Pay or view this invoice online"), link)
    doc.payment_details()
    return doc.output()


def statement_pdf(fonts: FontBook, payload: dict, link: str, logo: bytes | None = None,
                  gettext: Gettext = _identity, ngettext: Ngettext = _plural) -> bytes:
    """The statement of account (payload: portal.build.documents.statement_payload): per currency, the lines of
    the statement page with their running balance, then the aging."""
    _ = gettext
    doc = Writer(fonts, payload, gettext, ngettext)
    title = _("Statement of account")
    doc.pdf.set_title(title)
    doc.letterhead(title, logo)
    customer = payload["customer"]
    doc.two_blocks(_("Account of"), [customer["name"], *customer["lines"]],
                   [(_("Account"), customer["id"]), (_("As of"), payload["as_of_text"])])
    if not payload["statements"]:
        doc.paragraph(_("Balance"), [_("Nothing is open.")])
    for block in payload["statements"]:
        doc.font(11, True)
        doc.pdf.cell(0, 7, block["currency"], align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        rows = [(block["opening_date_text"], _("Opening balance"), "", block["opening_text"])]
        rows += [(r["date_text"], r["label"], r["amount_text"], r["running_text"]) for r in block["rows"]]
        rows.append(("", _("Closing balance"), "", block["closing_text"]))
        doc.table((_("Date"), _("Description"), _("Amount"), _("Balance")), rows, (24, 96, 30, 30),
                  bold_rows=frozenset({0, len(rows) - 1}), align=("LEFT", "LEFT", "RIGHT", "RIGHT"))
        aging = block["aging"]
        widths = tuple(180 // len(aging) for _cell in aging)
        doc.font(8.5)
        with doc.pdf.table(col_widths=widths, text_align="RIGHT", line_height=5, repeat_headings=1,
                           headings_style=FontFace(emphasis="BOLD", fill_color=LIGHT),
                           borders_layout=TableBordersLayout.HORIZONTAL_LINES, padding=(1, 1.5)) as table:
            table.row([_plain(cell["label"]) for cell in aging])
            table.row([_plain(cell["text"]) for cell in aging])
        doc.pdf.ln(5)
    doc.pay_box(_("Pay or view your account online"), link)
    doc.payment_details()
    return doc.output()


def receipt_pdf(fonts: FontBook, payload: dict, link: str, logo: bytes | None = None,
                gettext: Gettext = _identity, ngettext: Ngettext = _plural) -> bytes:
    """A settled payment's receipt (payload: portal.build.documents.receipt_payload): the facts and the allocation
    its page shows (portal/build/receipts.py, already formatted)."""
    _ = gettext
    doc = Writer(fonts, payload, gettext, ngettext)
    title = _("Payment receipt %(reference)s") % {"reference": payload["reference"]}
    doc.pdf.set_title(title)
    doc.letterhead(_("Payment receipt"), logo)
    customer = payload["customer"]
    facts = [(_("Paid on"), payload["paid_text"]),
             (_("Method"), _(METHODS[payload["method"]]) if payload["method"] in METHODS else payload["method"]),
             (_("Amount paid"), payload["amount_text"])]
    if payload["refunded_text"]:
        facts.append((_("Refunded"), payload["refunded_text"]))
    facts.append((_("Account"), customer["id"]))
    doc.two_blocks(_("Received from"), [customer["name"], *customer["lines"]], facts)
    doc.paragraph(_("Reference"), [payload["reference"]])  # full width: a payment id is one long word
    rows = [(_("Invoice %(number)s") % {"number": line["number"]}, line["amount_text"])
            for line in payload["invoices"]]
    rows += [(_("Credit note %(number)s used") % {"number": line["number"]}, "\u2212" + line["amount_text"])
             for line in payload["credits"]]
    if payload["adjustment"] < 0:
        rows.append((_("Bank payment discount"), "\u2212" + payload["adjustment_text"]))
    elif payload["adjustment"] > 0:
        rows.append((_("Payment method fee"), payload["adjustment_text"]))
    if payload["unapplied_text"]:
        rows.append((_("Received beyond what the invoices owed: our team applies it and will contact you"),
                     payload["unapplied_text"]))
    rows.append((_("Total paid"), payload["amount_text"]))
    doc.table((_("Applied to"), _("Amount")), rows, (145, 35), bold_rows=frozenset({len(rows) - 1}),
              align=("LEFT", "RIGHT"))
    doc.pay_box(_("Pay or view your account online"), link)
    return doc.output()
