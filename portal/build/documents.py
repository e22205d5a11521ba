"""The PDFs the portal generates (an invoice without a supplied PDF, the statement, a settled payment's receipt):
what each shows, the name it is kept under, and rendering it on its first download.

A build renders no PDF (docs/documents.md: a PDF costs ~20-60 ms to lay out and subset, a page ~0.3 ms). It
describes each one by a `payload`, everything the document shows, built from the very views the pages show
(amounts and statuses from portal/balances), and names it by the SHA-256 of that payload and the renderer's
version: `docs/<customer key>/<content sha256>.pdf`. The page links it through /d/ under that name. On the first
download the webhook renders it from the store (`generated_pdf`) and keeps it on the target under the name of
what it shows at that moment; later downloads of the same content are served as they are. A document whose content
changed (a payment, an import) gets a new name, so nobody is ever sent an older version of it by a newer page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portal.build import pdf
from portal.build.fonts import FontsMissing, find_fonts, font_book
from portal.core.config import Settings
from portal.core.i18n import catalog_digest, language_for
from portal.core.links import link_url
from portal.core.signing import Signer
from portal.store.database import CustomerData

# Bump when the layout changes: every PDF then gets a new name and is rendered again on its next download.
RENDERER_VERSION = "2"
STATEMENT = "statement"


@dataclass(frozen=True)
class Planned:
    """A generated PDF as a page links it: its document id, object name, and payload."""

    document_id: str  # "invoice:<invoice id>", "receipt:<attempt id>" or "statement"
    invoice_id: str
    name: str  # <sha256 of what it shows>.pdf
    payload: dict


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def letterhead(settings: Settings) -> dict:
    """The company as every document shows it (settings: docs/documents.md)."""
    return {"name": settings.company_name, "address": _lines(settings.company_address),
            "tax_id": settings.company_tax_id, "support_email": settings.support_email,
            "logo": _logo_digest(settings.company_logo), "fonts": _fonts(settings.font_dir)}


def _fonts(font_dir: str) -> str:
    """Which font files the PDFs will embed (found, not parsed): installing a CJK font renames, so re-renders, the
    PDFs rendered without it (from the next build on)."""
    try:
        return "|".join(f"{role}:{path}:{path.stat().st_size}" for role, path in sorted(find_fonts(font_dir).items()))
    except FontsMissing:
        return ""


def _logo_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def _customer(data: CustomerData) -> dict:
    billing = [c for c in data.contacts if c.role == "billing"][:2]
    return {"id": data.customer.customer_id, "name": data.customer.name,
            "lines": [f"{c.name} <{c.email}>" if c.name else c.email for c in billing]}


def base_payload(head: dict, settings: Settings, data: CustomerData) -> dict:
    """What every document of the customer shows; `head`: letterhead(settings), made once per renderer."""
    # Not the export's time: an invoice whose facts did not change keeps its name from one export to the next.
    # The catalog the PDF's words come from is part of what it shows (its name changes with a translation).
    language = language_for(data.customer.locale, settings.default_locale)
    return {"version": RENDERER_VERSION, "lang": data.customer.locale.split("_")[0], "company": head,
            "catalog": [language, catalog_digest(language)],
            "customer": _customer(data), "remit_to": _lines(settings.remit_to),
            "bank_details": _lines(settings.bank_details)}


def invoice_payload(base: dict, view: dict, lines: list[dict], lines_total: int, amount: int,
                    money: Callable[[int], str]) -> dict:
    """`view` and `lines`: the invoice page's (portal/build/pages.py). Amounts in minor units of the invoice's
    currency; what is due is the position's (portal/balances)."""
    other = amount - lines_total if lines else 0
    return {**base, "kind": "invoice", "number": view["number"], "issue_text": view["issue_text"],
            "due_text": view["due_text"], "po_number": view["po_number"], "terms": view["terms"],
            "description": view["description"], "lines": lines, "lines_total_text": money(lines_total),
            "other_text": money(other) if other else "", "amount_text": view["amount_text"],
            "settled_text": money(amount - view["open"]) if amount != view["open"] else "",
            "open_text": view["open_text"], "due_amount_text": view["payable_text"],
            "status_text": view["position_text"]}


def statement_payload(base: dict, as_of_text: str, statements: list[dict]) -> dict:
    blocks = [{"currency": b["currency"], "opening_date_text": b["opening_date_text"],
               "opening_text": b["opening_text"], "closing_text": b["closing_text"],
               "rows": [{k: r[k] for k in ("date_text", "label", "amount_text", "running_text")} for r in b["rows"]],
               "aging": [{"label": c["label"], "text": c["text"]} for c in b["aging"]]} for b in statements]
    return {**base, "kind": "statement", "as_of_text": as_of_text, "statements": blocks}


def receipt_payload(base: dict, view: dict) -> dict:
    """`view`: the receipt page's (portal/build/receipts.py): a settled payment and what it paid."""
    return {**base, "kind": "receipt", "reference": view["reference"], "method": view["method"],
            "paid_text": view["settled_text"] or view["date_text"], "amount_text": view["amount_text"],
            "refunded_text": view["refunded_text"], "adjustment": view["adjustment"],
            "adjustment_text": view["adjustment_text"], "unapplied_text": view["unapplied_text"],
            "invoices": [{"number": a["number"], "amount_text": a["amount_text"]} for a in view["invoices"]],
            "credits": [{"number": c["number"], "amount_text": c["amount_text"]} for c in view["credits"]]}


def plan(document_id: str, invoice_id: str, payload: dict) -> Planned:
    """Name the document by what it shows: the same content always has the same name, other content another."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return Planned(document_id, invoice_id, hashlib.sha256(canonical).hexdigest() + ".pdf", payload)


def render(settings: Settings, signer: Signer, customer_id: str, key_version: int, planned: Planned,
           gettext: pdf.Gettext = pdf._identity, ngettext: pdf.Ngettext = pdf._plural) -> bytes:
    """The PDF's bytes, with a payment link to the customer's page: a signed link like the emailed ones (salt
    `link`, valid link_ttl_days from now), naming no contact, so that its receipt says it came from a document."""
    link = link_url(settings, signer, customer_id, "", planned.invoice_id, key_version)
    logo = Path(settings.company_logo).read_bytes() if settings.company_logo else None
    fonts = font_book(settings.font_dir)
    write = (pdf.statement_pdf if planned.document_id == STATEMENT
             else pdf.receipt_pdf if planned.document_id.startswith("receipt:") else pdf.invoice_pdf)
    return write(fonts, planned.payload, link, logo, gettext, ngettext)
