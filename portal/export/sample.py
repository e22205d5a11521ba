"""A realistic, deterministic AR export for the demo, the tests and the benchmarks."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from portal.core.money import digits

# (currency, locale) mixes as a US-based supplier with some international customers would have.
MARKETS = [("USD", "en_US")] * 7 + [("EUR", "de_DE"), ("GBP", "en_GB"), ("CAD", "fr_CA")]
FIRST_MARKETS = [("USD", "en_US"), ("EUR", "de_DE"), ("GBP", "en_GB"), ("CAD", "fr_CA")]
COMPANY_WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka",
                 "Tyrell", "Cyberdyne", "Soylent", "Gringotts", "Oceanic", "Nakatomi", "Müller & Söhne",
                 "Olivaw", "Kessler", "Dunder", "Pendant"]
SUFFIXES = ["Inc.", "LLC", "GmbH", "Ltd", "Corp.", "& Co.", "S.A.", "Group"]
PRODUCTS = [("Steel bracket, galvanised", "12.40"), ("Hydraulic hose 2m", "48.00"), ("Pallet wrap", "19.99"),
            ("Safety gloves (box of 100)", "23.50"), ("Freight", "150.00"), ("Installation labour (hour)",
            "95.00"), ("Bearing 6204-2RS", "3.1250"), ("Control panel assembly", "1240.00"),
            ("Cable tray 3m", "36.80"), ("Maintenance contract (month)", "420.00")]
TERMS = ["Net 30", "Net 45", "Net 60", "2% 10, Net 30", "Due on receipt"]
GROUPS = ["enterprise", "mid-market", "small-business"]
COLLECTORS = ["dana@example.com", "lee@example.com", "sam@example.com"]
# Only the first customers get supporting documents: enough to show, cheap at 10,000 customers.
CUSTOMERS_WITH_DOCUMENTS = 5


def write_sample(folder: str | Path, customers: int = 12, invoices: int = 40, seed: int = 7,
                 as_of: datetime | None = None) -> Path:
    """Write customers.csv ... documents.csv and export.json into `folder`; return the folder. `as_of`: when the
    export was taken (default: now)."""
    rng = random.Random(seed)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    # Default: the moment it runs (to the second, as export.json writes it). A later time (say, 18:00 today) would
    # count a payment made in the demo right after as already in the export's balances, and hide it.
    as_of = (as_of or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
    today = as_of.date()

    customer_rows, contact_rows = [], []
    for n in range(1, customers + 1):
        customer_id = f"C{n:05d}"
        # The first four customers show one market each, so even a tiny sample has every formatting case.
        currency, locale = FIRST_MARKETS[n - 1] if n <= len(FIRST_MARKETS) else MARKETS[rng.randrange(len(MARKETS))]
        name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(SUFFIXES)}"
        customer_rows.append({"customer_id": customer_id, "name": name, "currency": currency,
                              "group": rng.choice(GROUPS), "collector": rng.choice(COLLECTORS),
                              "locale": locale})
        slug = f"{name.split()[0].lower().replace('ü', 'ue')}{n}"
        contact_rows.append({"customer_id": customer_id, "contact_id": f"{customer_id}-AP", "name": "Accounts Payable",
                             "email": f"ap@{slug}.example", "role": "billing"})
        if rng.random() < 0.4:
            contact_rows.append({"customer_id": customer_id, "contact_id": f"{customer_id}-CFO", "name": "Pat Morgan",
                                 "email": f"pat.morgan@{slug}.example", "role": "approver"})

    invoice_rows, line_rows = [], []
    currency_of = {c["customer_id"]: c["currency"] for c in customer_rows}
    for n in range(1, invoices + 1):
        # Every customer gets at least one invoice; the rest spread unevenly, as real ledgers do.
        # (index = customers * r**1.5 favours the first, "big account" customers without starving others).
        index = (n - 1) % customers if n <= customers else int(customers * rng.random() ** 1.5)
        customer_id = customer_rows[index]["customer_id"]
        currency = currency_of[customer_id]
        issue = today - timedelta(days=rng.randrange(0, 150))
        terms = rng.choice(TERMS)
        days = {"Net 30": 30, "Net 45": 45, "Net 60": 60, "2% 10, Net 30": 30}.get(terms, 0)
        total_minor = 0
        for _ in range(rng.randint(1, 4)):
            product, price = rng.choice(PRODUCTS)
            quantity = rng.choice([1, 1, 2, 5, 10, 24])
            scale = 10 ** digits(currency)
            amount = round(float(price) * quantity * scale)  # sample data only; the product never floats money
            total_minor += amount
            line_rows.append({"invoice_id": f"I{n:06d}", "description": product, "quantity": str(quantity),
                              "unit_price": price, "amount": _major(amount, currency)})
        paid_part = 0 if rng.random() < 0.85 else total_minor // rng.choice([2, 4])
        invoice_rows.append({
            "invoice_id": f"I{n:06d}", "customer_id": customer_id, "number": f"INV-{100000 + n}",
            "issue_date": issue.isoformat(), "due_date": (issue + timedelta(days=days)).isoformat(),
            "amount": _major(total_minor, currency), "balance": _major(total_minor - paid_part, currency),
            "currency": currency, "po_number": f"PO-{rng.randrange(10000, 99999)}" if rng.random() < 0.7 else "",
            "terms": terms, "description": ""})

    credit_rows = []
    for n, customer in enumerate(customer_rows[:: max(1, customers // 4)], start=1):
        currency = customer["currency"]
        amount = rng.randrange(50, 500) * 10 ** digits(currency)
        credit_rows.append({"credit_id": f"CR{n:05d}", "customer_id": customer["customer_id"],
                            "number": f"CM-{5000 + n}", "issue_date": (today - timedelta(days=rng.randrange(5, 60)))
                            .isoformat(), "amount": _major(amount, currency), "balance": _major(amount, currency),
                            "currency": currency, "description": "Credit for returned goods"})

    document_rows = []
    docs = out / "documents"
    first_invoice = {}
    for row in invoice_rows:
        first_invoice.setdefault(row["customer_id"], row)
    for customer in customer_rows[:CUSTOMERS_WITH_DOCUMENTS]:
        invoice = first_invoice[customer["customer_id"]]
        docs.mkdir(exist_ok=True)
        for kind, title in (("po", f"Purchase order {invoice['po_number'] or 'copy'}"),
                            ("delivery", "Proof of delivery")):
            name = f"{invoice['invoice_id']}-{kind}.pdf"
            (docs / name).write_bytes(_tiny_pdf(f"{title} for {invoice['number']}"))
            document_rows.append({"document_id": f"D-{invoice['invoice_id']}-{kind}",
                                  "customer_id": customer["customer_id"], "invoice_id": invoice["invoice_id"],
                                  "file": f"documents/{name}", "kind": kind, "title": title})

    _write(out / "customers.csv", customer_rows)
    _write(out / "contacts.csv", contact_rows)
    _write(out / "invoices.csv", invoice_rows)
    _write(out / "invoice_lines.csv", line_rows)
    _write(out / "credits.csv", credit_rows)
    _write(out / "documents.csv", document_rows,
           ["document_id", "customer_id", "invoice_id", "file", "kind", "title"])
    (out / "export.json").write_text(json.dumps({"as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ")}) + "\n")
    return out


def _major(minor: int, currency: str) -> str:
    places = digits(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10 ** places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"


def _write(path: Path, rows: list[dict], header: list[str] | None = None) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _tiny_pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", size=14)
    pdf.cell(0, 10, text.encode("latin-1", "replace").decode("latin-1"))
    return bytes(pdf.output())


__all__ = ["write_sample"]
