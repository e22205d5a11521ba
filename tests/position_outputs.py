"""Reading what each output shows about an invoice, the way a person gets it (tests/balances/test_position_property.py):
rendered HTML, PDF text, emails in an outbox folder, CSV bytes, JSON. Each reader returns plain texts; the test
compares them with its model. Nothing here imports the product."""

from __future__ import annotations

import csv
import io
import re
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pypdf


def usd(minor: int) -> str:
    """en_US money as the pages print it ($1,234.50, -$1.00), in integers."""
    sign = "-" if minor < 0 else ""
    return f"{sign}${abs(minor) // 100:,}.{abs(minor) % 100:02d}"


def major(minor: int) -> str:
    """A CSV amount in major units (1234.50)."""
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts (whitespace collapsed); each cell also keeps its lines (<br>)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("\n".join(" ".join(part.split()) for part in "".join(self._cell).split("\n")).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def table_with(html: str, *headings: str) -> list[list[str]] | None:
    """The rows (header first) of the first table whose header row has all these headings."""
    for rows in tables(html):
        if rows and all(h in rows[0] for h in headings):
            return rows
    return None


def text_of(html: str) -> str:
    parser = HTMLParser()
    parts: list[str] = []
    parser.handle_data = parts.append  # type: ignore[method-assign]
    parser.feed(html)
    return " ".join(" ".join(parts).split())


def pdf_text(path: Path | bytes) -> tuple[str, str]:
    """(title, text with whitespace collapsed) of a PDF."""
    reader = pypdf.PdfReader(io.BytesIO(path if isinstance(path, bytes) else path.read_bytes()), strict=True)
    text = " ".join(page.extract_text() for page in reader.pages)
    return str(reader.metadata.title or ""), " ".join(text.split())


def downloaded_pdfs(client, *pages: str) -> dict[str, str]:
    """title -> text of every PDF the pages link through the webhook's /d/, downloaded as a reader does (the
    invoice and statement PDFs are rendered on their first download)."""
    found = {}
    for token in sorted({t for page in pages for t in re.findall(r'/d/([A-Za-z0-9_.-]+)"', page)}):
        response = client.get(f"/d/{token}")
        assert response.status_code == 303, response.status_code
        location = urlparse(response.headers["Location"])
        with client.get(location.path + (f"?{location.query}" if location.query else "")) as served:
            if served.data.startswith(b"%PDF"):
                title, text = pdf_text(served.data)
                found[title] = text
    return found


def mails(folder: Path) -> list[tuple[str, str, str]]:
    """(subject, recipient, text part) of every message in an outbox folder."""
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(preferencelist=("plain",))
        found.append((str(message["Subject"]), str(message["To"]), body.get_content() if body else ""))
    return found


STANDING = re.compile(r"(INV-\d+): (-?\$[\d,]+\.\d\d) open, ([a-z ]+?)(?=[;\n]|$)", re.M)


def standing_lines(text: str) -> list[tuple[str, str, str]]:
    """("INV-1", "$40.00", "partly paid") for each "where it stands now" line of a payment or dispute email."""
    return STANDING.findall(text)


def csv_rows(data: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data)))
