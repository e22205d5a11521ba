"""What a customer's pages show: balances, aging, statuses, links, turned into files.

`PageRenderer.render(data)` returns every output file of one customer (pages, rendered PDFs, supplied
documents to copy) with its SHA-256, without touching the disk. The build decides what to write.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from urllib.parse import urlparse

from babel.dates import format_date, format_datetime

from portal.balances import rule
from portal.balances.statement import statement
from portal.build.pdf import invoice_pdf, statement_pdf
from portal.core.config import Settings
from portal.core.money import digits, format_money, format_price, format_quantity, to_decimal
from portal.core.signing import Signer
from portal.core.templating import Assets, load_assets, make_environment
from portal.disputes.service import OUTCOMES, STATUS_TEXT, reason_choices, reference
from portal.payments.pricing import METHODS, adjustment_bps
from portal.store.database import CustomerData

KIND_TEXT = {"invoice": "Invoice", "po": "Purchase order", "contract": "Contract", "delivery": "Proof of delivery",
             "statement": "Statement", "other": "Document"}
_SAFE_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


@dataclass(frozen=True)
class Output:
    """One file of the site. `data` is the content, or None when `source` (a file path) is to be copied."""

    path: str
    sha256: str
    size: int
    data: bytes | None = None
    source: str | None = None


def invoice_slug(invoice_id: str) -> str:
    """A file name for an invoice page: the id itself when it is URL-safe, else a readable part + hash."""
    if _SAFE_SLUG.fullmatch(invoice_id) and not invoice_id.endswith("."):
        return invoice_id
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", invoice_id).strip("-.")[:60] or "invoice"
    return f"{readable}-{hashlib.sha256(invoice_id.encode()).hexdigest()[:10]}"


def customer_paths(key: str, invoice_ids: list[str]) -> list[str]:
    """The page paths of a customer, known before rendering (used to refuse collisions up front)."""
    base = f"c/{key}/"
    return [base + "index.html", base + "statement.html", *(f"{base}i/{invoice_slug(i)}.html" for i in invoice_ids)]


def _origin(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}"


def checkout_origin(stripe_api_base: str) -> str:
    """Where Checkout Sessions live: Stripe's hosted page, or the API stand-in's own address in tests."""
    return _origin(stripe_api_base) if stripe_api_base else "https://checkout.stripe.com"


def _size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    scaled, unit = size / 1024, "KB"  # display only: sizes are counted in whole bytes everywhere else
    for bigger in ("MB", "GB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{scaled:.1f} {unit}"


class PageRenderer:
    def __init__(self, settings: Settings, signer: Signer | None = None, assets: Assets | None = None):
        self.settings = settings
        self.signer = signer or Signer(settings)
        self.env = make_environment(settings)
        self.assets = assets or load_assets(settings)
        self.webhook = settings.effective_webhook_url
        webhook_origin = _origin(self.webhook)
        # The pay form posts to the webhook, which redirects to Stripe's hosted checkout: browsers apply
        # form-action to that redirect too, so checkout's origin must be allowed (a stand-in's in tests).
        form_action = webhook_origin
        if settings.payments_enabled:
            form_action += " " + checkout_origin(settings.stripe_api_base)
        self.csp = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                    f"connect-src {webhook_origin}; form-action {form_action}; base-uri 'none'")
        self.templates = {name: self.env.get_template(f"pages/{name}.html")
                          for name in ("account", "invoice", "statement")}

    # --- formatting helpers, cached per locale: the same dates and amounts repeat a lot -----------------

    @staticmethod
    @lru_cache(maxsize=65536)
    def _date(value: date, locale: str) -> str:
        return format_date(value, "medium", locale=locale)

    @staticmethod
    @lru_cache(maxsize=256)  # one export time, a handful of locales: Babel's date-time formatting once each
    def _moment(value: datetime, locale: str) -> str:
        return format_datetime(value, "medium", tzinfo=value.tzinfo, locale=locale)

    def render(self, data: CustomerData, source: rule.Inputs | None = None,
               disputes: dict[str, list[tuple]] | None = None) -> list[Output]:
        """`source`: the customer's money movements and dispute holds (portal.balances.position.inputs), from which
        every amount and status shown is the position's (portal/balances/position.py). `disputes`: invoice id -> its
        disputes (portal.store.disputes.dispute_states), for their references and states."""
        source, disputes = source or rule.Inputs({}, {}), disputes or {}
        customer, locale = data.customer, data.customer.locale
        key = self.signer.customer_key(customer.customer_id, data.key_version)
        as_of_day = data.as_of.date()
        outputs: list[Output] = []

        def money(minor: int, currency: str) -> str:
            return format_money(minor, currency, locale)

        def doc_link(document_id: str, invoice_id: str, name: str) -> str:
            token = self.signer.doc_token(customer.customer_id, data.key_version, document_id, invoice_id, name)
            return f"{self.webhook}/d/{token}"

        def add_document(path: str, payload: bytes | None, digest: str, size: int, source: str | None) -> None:
            outputs.append(Output(path, digest, size, payload, source))

        # Supplied documents are copied under their content hash; the page links through /d/.
        docs_by_invoice: dict[str, list[dict]] = {}
        account_docs: list[dict] = []
        supplied_invoice_pdf: set[str] = set()
        for doc in data.documents:
            name = f"{doc.sha256}{doc.extension}"
            add_document(f"docs/{key}/{name}", None, doc.sha256, doc.size, doc.file)
            view = {"title": doc.title, "kind_text": KIND_TEXT.get(doc.kind, "Document"),
                    "size_text": _size_text(doc.size), "url": doc_link(doc.document_id, doc.invoice_id, name)}
            if doc.invoice_id:
                docs_by_invoice.setdefault(doc.invoice_id, []).append(view)
                if doc.kind == "invoice" and doc.extension == ".pdf":
                    supplied_invoice_pdf.add(doc.invoice_id)
            else:
                account_docs.append(view)

        invoices = []
        totals: dict[str, dict] = {}
        buckets = self.settings.aging_buckets
        positions: dict[str, rule.Position] = {}
        for inv in data.invoices:
            states = disputes.get(inv.invoice_id, ())
            pos = positions[inv.invoice_id] = source.invoice(inv.invoice_id, inv.amount, inv.balance, data.as_of)
            open_amount = pos.open
            days_late = (as_of_day - inv.due_date).days
            unresolved = [st for st in states if st[1] != "resolved"]
            status, status_text = _status(pos, days_late, bool(unresolved) and unresolved[-1][1] == "under_review")
            view = {
                "invoice_id": inv.invoice_id, "slug": invoice_slug(inv.invoice_id), "number": inv.number,
                "issue_iso": inv.issue_date.isoformat(), "issue_text": self._date(inv.issue_date, locale),
                "due_iso": inv.due_date.isoformat(), "due_text": self._date(inv.due_date, locale),
                "amount_text": money(inv.amount, inv.currency), "open": open_amount,
                "open_text": money(open_amount, inv.currency), "status": status, "status_text": status_text,
                "po_number": inv.po_number, "terms": inv.terms, "description": inv.description,
                "currency": inv.currency, "scale": 10 ** digits(inv.currency),
                "open_plain": str(to_decimal(open_amount, inv.currency)),
                "position": pos.status, "position_text": pos.status_text,
                "pending_text": money(pos.pending, inv.currency) if pos.pending else "",
                "failure": pos.failure,
                "payable": pos.due, "payable_text": money(pos.due, inv.currency),
                "payable_plain": str(to_decimal(pos.due, inv.currency)),
                "disputed_text": money(pos.disputed, inv.currency) if pos.disputed else "",
                "disputes": [{"reference": reference(d_id), "status_text": STATUS_TEXT.get(d_status, d_status),
                              "outcome_text": OUTCOMES.get(outcome, ""), "amount_text": money(amount, inv.currency)}
                             for d_id, d_status, outcome, amount in states],
            }
            invoices.append(view)
            total = totals.setdefault(inv.currency, {"currency": inv.currency, "open": 0, "overdue": 0,
                                                     "credit": 0, "aging": [0] * (len(buckets) + 2)})
            total["open"] += open_amount
            if days_late > 0:
                total["overdue"] += open_amount
            total["aging"][_bucket(days_late, buckets)] += open_amount

        credits, available_of = [], {}
        for cr in data.credits:
            available = available_of[cr.credit_id] = source.credit_available(cr.credit_id, cr.amount, cr.balance,
                                                                             data.as_of)
            credits.append({"credit_id": cr.credit_id, "number": cr.number, "issue_iso": cr.issue_date.isoformat(),
                            "issue_text": self._date(cr.issue_date, locale), "description": cr.description,
                            "available": available, "currency": cr.currency,
                            "balance_text": money(available, cr.currency)})
            total = totals.setdefault(cr.currency, {"currency": cr.currency, "open": 0, "overdue": 0,
                                                    "credit": 0, "aging": [0] * (len(buckets) + 2)})
            total["credit"] += available

        labels = ["Not yet due", *(f"{lo + 1}–{hi} days" for lo, hi in zip((0, *buckets), buckets, strict=False)),
                  f"Over {buckets[-1]} days"]
        total_views = []
        for currency in sorted(totals):
            t = totals[currency]
            total_views.append({**t, "open_text": money(t["open"], currency),
                                "overdue_text": money(t["overdue"], currency),
                                "credit_text": money(t["credit"], currency),
                                "aging": [{"label": lbl, "text": money(v, currency)}
                                          for lbl, v in zip(labels, t["aging"], strict=True)]})

        statements = statement(data, source, positions, available_of,
                               {v["currency"]: v["aging"] for v in total_views},
                               {view["invoice_id"]: view["slug"] for view in invoices}, money,
                               lambda d: self._date(d, locale))
        base = {
            "lang": locale.split("_")[0], "csp": self.csp, "assets": self.assets.urls,
            "company": {"name": self.settings.company_name, "support_email": self.settings.support_email},
            "customer": customer, "collector": customer.collector,
            "as_of_iso": data.as_of.isoformat().replace("+00:00", "Z"),
            "as_of_text": self._moment(data.as_of, locale) + " UTC",
        }
        page_token = self.signer.page_token("page", customer.customer_id, data.key_version)
        forms = {"enabled": True, "page_token": page_token, "question_action": f"{self.webhook}/question",
                 "dispute_action": f"{self.webhook}/dispute", "reasons": reason_choices(self.settings),
                 "email": customer.collector or self.settings.support_email,
                 "promise_action": f"{self.webhook}/promise", "promise_max_days": self.settings.promise_max_days,
                 "promise_min_percent": self.settings.promise_min_percent}
        pay = {"enabled": self.settings.payments_enabled, "page_token": page_token,
               "action": f"{self.webhook}/pay", "preselect": False, "partial": self.settings.partial_payments,
               "credits": [c for c in credits if c["available"] > 0],
               "lang": locale.replace("_", "-"),
               "methods": [{"value": m, "label": label, "bps": adjustment_bps(self.settings, m),
                            "note": _method_note(adjustment_bps(self.settings, m))} for m, label in METHODS.items()]}

        statement_pdf_view = None
        if self.settings.render_pdfs:
            pdf = statement_pdf(self.settings.company_name, customer, base["as_of_text"], statements)
            digest = hashlib.sha256(pdf).hexdigest()
            name = f"{digest}.pdf"
            add_document(f"docs/{key}/{name}", pdf, digest, len(pdf), None)
            statement_pdf_view = {"url": doc_link("statement", "", name)}

        def page(path: str, template: str, depth: int, **context: object) -> None:
            root = "../" * depth
            beacon_item = context.get("inv", {}).get("invoice_id", "") if template == "invoice" else template
            html = self.templates[template].render(
                **base, **context, page=template, root=root, up="../" if depth == 3 else "",
                beacon_url=f"{self.webhook}/r/"
                           f"{self.signer.page_token('view', customer.customer_id, data.key_version, beacon_item)}",
            ).encode()
            outputs.append(Output(path, hashlib.sha256(html).hexdigest(), len(html), html))

        page(f"c/{key}/index.html", "account", 2, invoices=invoices, credits=credits, totals=total_views,
             documents=account_docs, statement_pdf=statement_pdf_view, forms=forms,
             pay={**pay, "preselect": False})
        page(f"c/{key}/statement.html", "statement", 2, statements=statements, statement_pdf=statement_pdf_view)
        for inv, view in zip(data.invoices, invoices, strict=True):
            lines = [{"description": ln.description, "quantity_text": format_quantity(ln.quantity, locale),
                      "unit_price_text": format_price(ln.unit_price, inv.currency, locale),
                      "amount_text": money(ln.amount, inv.currency)} for ln in data.lines.get(inv.invoice_id, [])]
            docs = list(docs_by_invoice.get(inv.invoice_id, ()))
            if self.settings.render_pdfs and inv.invoice_id not in supplied_invoice_pdf:
                pdf = invoice_pdf(self.settings.company_name, customer, inv, lines, view)
                digest = hashlib.sha256(pdf).hexdigest()
                name = f"{digest}.pdf"
                add_document(f"docs/{key}/{name}", pdf, digest, len(pdf), None)
                docs.insert(0, {"title": f"Invoice {inv.number} (PDF)", "kind_text": "Invoice",
                                "size_text": _size_text(len(pdf)),
                                "url": doc_link(f"invoice:{inv.invoice_id}", inv.invoice_id, name)})
            page(f"c/{key}/i/{view['slug']}.html", "invoice", 3, inv=view, lines=lines, documents=docs,
                 forms=forms, pay={**pay, "preselect": True})
        return outputs


def _method_note(bps: int) -> str:
    """"1% discount" / "2.5% fee" for the pay form's method labels (basis points, shown as a percentage)."""
    if not bps:
        return ""
    whole, rest = divmod(abs(bps), 100)
    text = f"{whole}" + (f".{rest:02d}".rstrip("0") if rest else "")
    return f"{text}% {'discount' if bps < 0 else 'fee'}"


def _status(pos: rule.Position, days_late: int, under_review: bool) -> tuple[str, str]:
    """(badge style, text) of an invoice: the position's status (portal/balances/position.py), and for what is still
    to be paid, when it falls due (a presentation on top of the position, never a status of its own)."""
    if pos.status == rule.IN_DISPUTE:
        return "disputed", pos.status_text + (" · under review" if under_review else "")
    if pos.status == rule.PAID:
        return "paid", pos.status_text
    if pos.status == rule.PAYMENT_PENDING:
        return "pending", pos.status_text
    if pos.status not in rule.ASKABLE:
        return "current", pos.status_text
    if days_late > 0:
        return "overdue", f"{pos.status_text} · overdue {days_late} day{'s' if days_late != 1 else ''}"
    if days_late == 0:
        return "due", f"{pos.status_text} · due today"
    return "current", f"{pos.status_text} · due in {-days_late} day{'s' if days_late != -1 else ''}"


def _bucket(days_late: int, buckets: tuple[int, ...]) -> int:
    if days_late <= 0:
        return 0
    for index, limit in enumerate(buckets, start=1):
        if days_late <= limit:
            return index
    return len(buckets) + 1


