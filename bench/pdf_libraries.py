"""PDF library benchmark: the same invoice (letterhead, bill-to, a table of N lines with a header row, totals) in a
German and a Japanese version, rendered by each candidate library with the same fonts (Noto Sans, Droid Sans
Fallback for CJK), subset and embedded. Reports milliseconds per document (median of --repeat, after a warm-up
that loads the fonts once) and the file size, and whether pypdf (strict) reads back "Müller", "€", "￥" and the
Japanese line. The portal's own renderer (portal/build/pdf.py on fpdf2) is measured through the same code path as
a download. Libraries that are not installed are reported as such (only fpdf2 is a dependency of the portal):

    pip install reportlab typst weasyprint   # into a scratch environment
    python bench/pdf_libraries.py [--lines 20] [--repeat 15]
"""

from __future__ import annotations

import argparse
import html
import io
import statistics
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pypdf  # noqa: E402

from portal.build import documents  # noqa: E402
from portal.build.fonts import find_fonts  # noqa: E402
from portal.build.pages import PageRenderer  # noqa: E402
from portal.core.config import load_settings  # noqa: E402
from portal.core.signing import Signer  # noqa: E402
from portal.export.model import Contact, Customer, Invoice, InvoiceLine  # noqa: E402
from portal.store.database import CustomerData  # noqa: E402

AS_OF = __import__("datetime").datetime(2026, 11, 20, 18, tzinfo=__import__("datetime").UTC)
CASES = {"de": (Customer("C1", "Müller & Söhne GmbH", "EUR", "de_DE"), "Kugellager 6204 – abgedichtet"),
         "ja": (Customer("C2", "株式会社サンプル", "JPY", "ja_JP"), "技術サポート料金（11月分）")}
EXPECT = {"de": ("Müller", "€"), "ja": ("￥", "技術サポート料金（11月分）")}


def sample(kind: str, count: int) -> tuple[CustomerData, list[tuple[str, str, str, str]]]:
    customer, text = CASES[kind]
    rows = [InvoiceLine("I1", n, f"{text} {n}", Decimal(2), Decimal("61.725"), 12345) for n in range(count)]
    invoice = Invoice("I1", customer.customer_id, "RE-1001", date(2026, 10, 1), date(2026, 10, 31), 12345 * count,
                      12345 * count, customer.currency, "PO-7", "Net 30")
    data = CustomerData(customer, 1, AS_OF, [Contact(customer.customer_id, "k", "ap@example.com")], [invoice],
                        {"I1": rows}, [], [])
    price, amount = ("61,73 €", "123,45 €") if customer.currency == "EUR" else ("￥6,173", "￥12,345")
    return data, [(f"{text} {n}", "2", price, amount) for n in range(count)]


_renderers: dict = {}


def portal_fpdf2(settings, data, _rows) -> bytes:
    """As /d/ renders a PDF on its first download: the customer's views, then the document (the renderer and its
    templates made once per process, as the webhook keeps them)."""
    renderer = _renderers.setdefault("r", PageRenderer(settings))
    planned: dict = {}
    renderer.render(data, planned=planned)
    return documents.render(settings, Signer(settings), data.customer.customer_id, 1, planned["invoice:I1"])


def reportlab_pdf(_settings, data, rows) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table

    fonts = find_fonts()
    if "Text" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("Text", str(fonts["regular"])))
        pdfmetrics.registerFont(TTFont("CJK", str(fonts["cjk"])))
    # ReportLab has no font fallback: a text with CJK characters must be set in the CJK font as a whole.
    font = "CJK" if data.customer.locale.startswith("ja") else "Text"
    style = ParagraphStyle("p", fontName=font, fontSize=9)
    out = io.BytesIO()
    story = [Paragraph("Example Supplies Inc.", style), Paragraph(html.escape(data.customer.name), style),
             Table([("Description", "Qty", "Unit price", "Amount"), *rows], repeatRows=1,
                   style=[("FONT", (0, 0), (-1, -1), font, 8.5)])]
    SimpleDocTemplate(out, pagesize=A4, invariant=1).build(story)
    return out.getvalue()


def typst_pdf(_settings, data, rows) -> bytes:
    import typst

    fonts = find_fonts()
    cells = ", ".join(f"[{c}]" for row in rows for c in row)
    source = (f'#set text(font: ("Noto Sans", "Droid Sans Fallback"), size: 9pt)\n= Example Supplies Inc.\n'
              f"{data.customer.name}\n#table(columns: 4, table.header([Description], [Qty], [Unit price], "
              f"[Amount]), {cells})\n")
    with tempfile.TemporaryDirectory() as folder:
        main = Path(folder) / "main.typ"
        main.write_text(source, encoding="utf-8")
        return typst.compile(str(main), font_paths=sorted({str(p.parent) for p in fonts.values()}))


def weasyprint_pdf(_settings, data, rows) -> bytes:
    from weasyprint import HTML

    body = "".join(f"<tr>{''.join(f'<td>{html.escape(c)}</td>' for c in row)}</tr>" for row in rows)
    page = (f"<html><body style=\"font-family: 'Noto Sans', 'Droid Sans Fallback'; font-size: 9pt\">"
            f"<h1>Example Supplies Inc.</h1><p>{html.escape(data.customer.name)}</p><table><thead><tr>"
            f"<th>Description</th><th>Qty</th><th>Unit price</th><th>Amount</th></tr></thead>{body}</table>"
            f"</body></html>")
    return HTML(string=page).write_pdf()


LIBRARIES = {"fpdf2 (portal)": (None, portal_fpdf2), "reportlab": ("reportlab", reportlab_pdf),
             "typst": ("typst", typst_pdf), "weasyprint": ("weasyprint", weasyprint_pdf)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    settings = load_settings(env={}, config_file=None, secret_key="bench-secret-0123456789")
    print(f"{'library':<16}{'case':<6}{'ms/doc':>8}{'KB':>8}  reads back")
    for name, (module, write) in LIBRARIES.items():
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                print(f"{name:<16}not installed")
                continue
        for kind in CASES:
            data, rows = sample(kind, args.lines)
            try:
                pdf = write(settings, data, rows)  # warm-up: fonts loaded once per process
            except Exception as exc:  # noqa: BLE001 - a candidate that fails is reported, not fatal
                print(f"{name:<16}{kind:<6}failed: {exc.__class__.__name__}: {exc}")
                continue
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                pdf = write(settings, data, rows)
                times.append(time.perf_counter() - start)
            text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf), strict=True).pages)
            found = [e for e in EXPECT[kind] if e in text]
            print(f"{name:<16}{kind:<6}{statistics.median(times) * 1000:>8.1f}{len(pdf) / 1024:>8.1f}  "
                  f"{', '.join(found) or '-'}", flush=True)


if __name__ == "__main__":
    main()
