"""The AR data model: one snapshot of open AR as the ERP exported it (README.md, "Input: the AR export").

Plain frozen records (customers, contacts, invoices and their lines, credit notes, supplied documents) gathered
in a `Ledger`. Amounts are integer minor units of the record's currency (portal/core/money.py); quantities and
unit prices are exact decimals. portal/export/reader.py builds a Ledger from an export folder and is the only
code that checks one; everything else (the store's import, the build, the emails) trusts what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

ROLES = ("billing", "approver", "other")

DOCUMENT_KINDS = ("invoice", "po", "contract", "delivery", "statement", "other")
# Supplied documents are served to customers as downloads: only types that do not run in a browser.
DOCUMENT_TYPES = {
    ".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".csv": "text/csv", ".txt": "text/plain", ".xml": "application/xml", ".zip": "application/zip",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".doc": "application/msword",
}
# Shown in the browser when opened; every other type is served as a download (`attachment`), on every target,
# so no document (an .xml, a .txt with markup) is rendered on the origin that serves it.
INLINE_TYPES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp"})


def document_disposition(name: str) -> str:
    """`inline` or `attachment` for a document named `name` (by its extension): the one rule for the folder
    target's /files/ route and for the S3 target's presigned URLs."""
    return "inline" if Path(name).suffix.lower() in INLINE_TYPES else "attachment"


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    name: str
    currency: str
    locale: str
    group: str = ""
    collector: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    customer_id: str
    contact_id: str
    email: str
    name: str = ""
    role: str = "billing"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    invoice_id: str
    line_no: int
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: int


@dataclass(frozen=True, slots=True)
class Invoice:
    invoice_id: str
    customer_id: str
    number: str
    issue_date: date
    due_date: date
    amount: int
    balance: int
    currency: str
    po_number: str = ""
    terms: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Credit:
    credit_id: str
    customer_id: str
    number: str
    issue_date: date
    amount: int
    balance: int
    currency: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    document_id: str
    customer_id: str
    file: str  # as written in documents.csv, relative to the export folder
    invoice_id: str = ""
    kind: str = "other"
    title: str = ""
    sha256: str = ""
    size: int = 0
    content_type: str = "application/octet-stream"

    @property
    def extension(self) -> str:
        return Path(self.file).suffix.lower()


@dataclass
class Ledger:
    """One snapshot of open AR as the ERP exported it."""

    folder: Path
    as_of: datetime
    customers: dict[str, Customer] = field(default_factory=dict)
    contacts: list[Contact] = field(default_factory=list)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    lines: dict[str, list[InvoiceLine]] = field(default_factory=dict)
    credits: dict[str, Credit] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def document_path(self, document: Document) -> Path:
        return self.folder / document.file

