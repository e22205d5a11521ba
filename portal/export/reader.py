"""The reader of the ERP export (README.md, "Input: the AR export").

`read_export(folder, settings)` returns a `Ledger` (portal/export/model.py) or raises `ExportInvalid` listing every
problem as `file:line: column: message`, after reading every file, so one run names them all. Nothing is written
anywhere by the reader.

The reader is four modules: this one (the folder, export.json, the small files credits.csv and documents.csv, the
documents themselves), portal/export/rows.py (the four big files, each with a fast path and the checks it must
agree with), portal/export/csvfiles.py (records, rows and what every row shares) and portal/export/model.py.
`READER_FILES` lists them: a build's export fingerprint covers their code (portal/build/pipeline.py), so a change
to any check makes the next build read the export again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from portal.core.config import Settings
from portal.core.errors import ExportInvalid
from portal.core.gcpause import collector_paused
from portal.export import csvfiles, model, rows
from portal.export.csvfiles import AMOUNTS, Reader, Row
from portal.export.model import DOCUMENT_KINDS, DOCUMENT_TYPES, Credit, Document, Ledger

# Every file whose code decides what an export reads as (see the module docstring).
READER_FILES: tuple[Path, ...] = (*(Path(m.__file__) for m in (model, csvfiles, rows)), Path(__file__))


def read_export(folder: str | os.PathLike, settings: Settings) -> Ledger:
    """Read and validate an export folder; raise ExportInvalid with every problem found."""
    root = Path(folder)
    if not root.is_dir():
        raise ExportInvalid([f"{root}: not a folder"])
    root = root.resolve()
    reader = Reader(root, settings)
    ledger = Ledger(folder=root, as_of=_read_as_of(root, reader.problems))
    with collector_paused():  # the ledger is a big tree without cycles: nothing for the collector to find
        rows.read_customers(reader, ledger)
        rows.read_contacts(reader, ledger)
        rows.read_invoices(reader, ledger)
        rows.read_lines(reader, ledger)
        _read_credits(reader, ledger)
        _read_documents(reader, ledger)
    for customer_id in sorted(set(ledger.customers) - {c.customer_id for c in ledger.contacts}):
        reader.warnings.append(f'customers.csv: customer "{customer_id}" has no contacts: no one can be '
                               "sent a link")
    if reader.problems:
        raise ExportInvalid(reader.problems, reader.warnings)
    ledger.warnings = reader.warnings
    return ledger


def _read_as_of(root: Path, problems: list[str]) -> datetime:
    path = root / "export.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            problems.append("export.json:1: not valid UTF-8")
            return datetime.now(UTC)
        except json.JSONDecodeError as exc:
            problems.append(f"export.json:{exc.lineno}: {exc.msg}")
            return datetime.now(UTC)
        text = data.get("as_of") if isinstance(data, dict) else None
        if not isinstance(text, str):
            problems.append('export.json:1: as_of: missing (write {"as_of": "2026-11-20T18:00:00Z"})')
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f'export.json:1: as_of: "{text}" is not an ISO 8601 time')
            return datetime.now(UTC)
        if moment.tzinfo is None:
            problems.append(f'export.json:1: as_of: "{text}" has no time zone (add Z for UTC)')
            return datetime.now(UTC)
        return moment.astimezone(UTC)
    newest = max((p.stat().st_mtime for p in root.glob("*.csv")), default=None)
    moment = datetime.fromtimestamp(newest, UTC) if newest else datetime.now(UTC)
    return moment.replace(microsecond=0)



def _read_credits(reader: Reader, ledger: Ledger) -> None:
    seen: dict[str, int] = {}
    allow_foreign = reader.settings.allow_foreign_currency
    for row in reader.rows("credits.csv", ("credit_id", "customer_id", "number", "issue_date", "amount",
                                           "balance"), required=False):
        credit_id = reader.unique(row, "credit_id", seen)
        customer_id = reader.known_customer(row, ledger)
        customer = ledger.customers.get(customer_id)
        number = row.required("number")
        issue_date = row.date("issue_date")
        currency = reader.currency(row, customer.currency if customer else reader.settings.default_currency)
        if customer and currency and currency != customer.currency and not allow_foreign:
            row.error("currency", f"{currency} differs from the customer's {customer.currency}")
            currency = ""
        amount, balance = row.amount_and_balance(currency, "write a credit as a positive amount")
        if credit_id and customer and number and issue_date and amount is not None and balance is not None \
                and not reader.add_to_total(AMOUNTS, amount):
            reader.total_error(row, AMOUNTS)
            amount = None
        if credit_id and customer and number and issue_date and amount is not None and balance is not None:
            ledger.credits[credit_id] = Credit(credit_id, customer_id, number, issue_date, amount, balance,
                                               currency, row.get("description"))


def _read_documents(reader: Reader, ledger: Ledger) -> None:
    seen: dict[str, int] = {}
    root = ledger.folder
    for row in reader.rows("documents.csv", ("document_id", "customer_id", "file"), required=False):
        document_id = reader.unique(row, "document_id", seen)
        customer_id = reader.known_customer(row, ledger)
        invoice_id = row.get("invoice_id")
        invoice = ledger.invoices.get(invoice_id)
        if invoice_id and invoice is None:
            reader.unknown_invoice(row, invoice_id)
        elif invoice and invoice.customer_id != customer_id:
            # Attaching one customer's document to another's invoice would publish it to the wrong page.
            row.error("invoice_id", f'"{invoice_id}" belongs to customer "{invoice.customer_id}", '
                                    f'not "{customer_id}"')
        kind = row.get("kind").lower() or "other"
        if kind not in DOCUMENT_KINDS:
            row.error("kind", f'"{kind}" is not one of {", ".join(DOCUMENT_KINDS)}')
        file_text = row.required("file")
        checked = _check_document_file(row, root, file_text) if file_text else None
        if document_id and customer_id in ledger.customers and checked and kind in DOCUMENT_KINDS \
                and (not invoice_id or (invoice and invoice.customer_id == customer_id)):
            sha, size, content_type = checked
            ledger.documents[document_id] = Document(
                document_id, customer_id, file_text, invoice_id, kind,
                row.get("title") or Path(file_text).name, sha, size, content_type)


def _check_document_file(row: Row, root: Path, file_text: str) -> tuple[str, int, str] | None:
    """Hash a document after making sure it is a regular file inside the export folder."""
    relative = Path(file_text)
    if relative.is_absolute() or file_text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", file_text):
        row.error("file", f'"{file_text}" is an absolute path; give it relative to the export folder')
        return None
    if ".." in relative.parts or ".." in file_text.replace("\\", "/").split("/"):
        row.error("file", f'"{file_text}" leaves the export folder ("..")')
        return None
    path = root / relative
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        row.error("file", f'"{file_text}" does not exist')
        return None
    if not resolved.is_relative_to(root):
        row.error("file", f'"{file_text}" is a link that points outside the export folder')
        return None
    if not resolved.is_file():
        row.error("file", f'"{file_text}" is not a regular file')
        return None
    content_type = DOCUMENT_TYPES.get(relative.suffix.lower())
    if content_type is None:
        row.error("file", f'"{file_text}": type "{relative.suffix or "(none)"}" is not allowed '
                          f"(allowed: {', '.join(sorted(DOCUMENT_TYPES))})")
        return None
    digest = hashlib.sha256()
    size = 0
    with open(resolved, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, content_type
