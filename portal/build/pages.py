"""What a customer's pages show: balances, aging, statuses, links, turned into files.

`PageRenderer.render(data)` returns every output file of one customer (pages, rendered PDFs, supplied
documents to copy) with its SHA-256, without touching the disk. The build decides what to write.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from gettext import NullTranslations
from urllib.parse import urlparse

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent, get_decimal_symbol, get_group_symbol

from portal.balances import rule
from portal.balances.statement import statement
from portal.build import documents
from portal.build.methods_view import methods_view
from portal.build.plan_view import plan_view
from portal.build.receipts import paid_recently, payment_views
from portal.core.config import Settings
from portal.core.i18n import N_, html_lang, language_for, translations_for
from portal.core.money import digits, format_money, format_price, format_quantity, input_amount
from portal.core.signing import Signer
from portal.core.templating import Assets, load_assets, make_environment
from portal.disputes.service import OUTCOME_PHRASE, STATUS_TEXT, reason_choices, reference
from portal.payments.history import Payment, paid_on
from portal.payments.pricing import METHODS, adjustment_bps
from portal.payments.state import customer_reason
from portal.store.approvals import ApprovalRequest
from portal.store.database import CustomerData
from portal.store.plans import StoredPlan

# English; shown in the customer's language (portal/core/i18n.py).
KIND_TEXT = {"invoice": N_("Invoice"), "po": N_("Purchase order"), "contract": N_("Contract"),
             "delivery": N_("Proof of delivery"), "statement": N_("Statement"), "other": N_("Document")}
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


def _size_text(size: int, locale: str = "en", t: NullTranslations | None = None) -> str:
    if size < 1024:
        return (t or translations_for(None)).ngettext("%(num)d byte", "%(num)d bytes", size) % {"num": size}
    scaled, unit = size / 1024, "KB"  # display only: sizes are counted in whole bytes everywhere else
    for bigger in ("MB", "GB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{format_decimal(round(scaled, 1), format='0.0', locale=locale)} {unit}"


PAGE_TEMPLATES = ("account", "invoice", "statement", "receipt")


class PageRenderer:
    def __init__(self, settings: Settings, signer: Signer | None = None, assets: Assets | None = None):
        self.settings = settings
        self.signer = signer or Signer(settings)
        self.env = make_environment(settings)
        self._templates: dict[str, dict] = {}  # language -> its templates (one environment each)
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
        self.templates = self.templates_for(None)
        self.letterhead = documents.letterhead(settings) if settings.render_pdfs else {}

    def pdf_translations(self, locale: str) -> tuple:
        """(gettext, ngettext) for the customer's PDFs in `locale`: the customer's catalog (portal/core/i18n.py),
        the one place the translations are wired in for the PDFs, as templates_for does for the pages."""
        t = translations_for(locale, self.settings.default_locale)
        return t.gettext, t.ngettext

    def templates_for(self, locale: str | None) -> dict:
        """The page templates in the language of a customer's `locale` (portal/core/i18n.py); made once per
        language, never by swapping a language on a shared environment (renders may run in threads)."""
        language = language_for(locale, self.settings.default_locale) if locale is not None else ""
        templates = self._templates.get(language)
        if templates is None:
            env = make_environment(self.settings, language) if language else self.env
            templates = self._templates.setdefault(language, {name: env.get_template(f"pages/{name}.html")
                                                              for name in PAGE_TEMPLATES})
        return templates

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
               disputes: dict[str, list[tuple]] | None = None, saved: dict[str, tuple] | None = None,
               planned: dict[str, documents.Planned] | None = None, payments: dict[str, list[Payment]] | None = None,
               approvals: dict[str, dict[str, ApprovalRequest]] | None = None,
               plans: dict[str, StoredPlan] | None = None) -> list[Output]:
        """`planned`: when given, receives the generated PDFs the pages link (document id -> what it shows and
        its name: portal/build/documents.py), which the build does not render. `payments`: customer id -> its
        payment history (portal.payments.history), for the history, the receipts and "Paid on".
        `source`: the customer's money movements and dispute holds (portal.balances.position.inputs), from which
        every amount and status shown is the position's (portal/balances/position.py). `disputes`: invoice id -> its
        disputes (portal.store.disputes.dispute_states), for their references and states. `approvals`: customer id ->
        invoice id -> its approval for payment (portal.store.approvals.approved_invoices). `plans`: invoice id -> its
        open payment plan (portal.store.plans.open_plans)."""
        source, disputes = source or rule.Inputs({}, {}), disputes or {}
        customer, locale = data.customer, data.customer.locale
        tr, templates = translations_for(locale, self.settings.default_locale), self.templates_for(locale)
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
            view = {"title": doc.title, "kind_text": tr.gettext(KIND_TEXT.get(doc.kind, KIND_TEXT["other"])),
                    "size_text": _size_text(doc.size, locale, tr),
                    "url": doc_link(doc.document_id, doc.invoice_id, name)}
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
            status, status_text = _status(pos, days_late, bool(unresolved) and unresolved[-1][1] == "under_review", tr)
            view = {
                "invoice_id": inv.invoice_id, "slug": invoice_slug(inv.invoice_id), "number": inv.number,
                "issue_iso": inv.issue_date.isoformat(), "issue_text": self._date(inv.issue_date, locale),
                "due_iso": inv.due_date.isoformat(), "due_text": self._date(inv.due_date, locale),
                "amount_text": money(inv.amount, inv.currency), "open": open_amount,
                "open_text": money(open_amount, inv.currency), "status": status, "status_text": status_text,
                "po_number": inv.po_number, "terms": inv.terms, "description": inv.description,
                "currency": inv.currency, "scale": 10 ** digits(inv.currency),
                "open_plain": input_amount(open_amount, inv.currency, locale),
                "position": pos.status, "position_text": tr.gettext(pos.status_text),
                "pending_text": money(pos.pending, inv.currency) if pos.pending else "",
                "failure": tr.gettext(customer_reason(stored=pos.failure)) if pos.failure else "",
                "payable": pos.due, "payable_text": money(pos.due, inv.currency),
                "paid_on_text": "", "approved_on_text": "", "approved_by": "",
                "payable_plain": input_amount(pos.due, inv.currency, locale),
                "disputed_text": money(pos.disputed, inv.currency) if pos.disputed else "",
                "disputes": [{"reference": reference(d_id), "status": d_status,
                              "status_text": tr.gettext(STATUS_TEXT[d_status]) if d_status in STATUS_TEXT else d_status,
                              "outcome_text": tr.gettext(OUTCOME_PHRASE[outcome]) if outcome in OUTCOME_PHRASE else "",
                              "amount_text": money(amount, inv.currency)}
                             for d_id, d_status, outcome, amount in states],
            }
            approval = (approvals or {}).get(customer.customer_id, {}).get(inv.invoice_id)
            if approval is not None:  # "Approved for payment on DATE by ADDRESS" (the template's sentence)
                view.update(approved_on_text=self._date(approval.approved_at.date(), locale),
                            approved_by=approval.email)
            view["plan"] = plan_view((plans or {}).get(inv.invoice_id), pos, inv.currency, locale,
                                     self.settings.promise_grace_days, money, lambda d: self._date(d, locale), tr)
            if pos.status == rule.PAID:
                settled = paid_on(source.moves.get(("invoice", inv.invoice_id), ()))
                view["paid_on_text"] = self._date(settled.date(), locale) if settled else ""
            invoices.append(view)
            total = totals.setdefault(inv.currency, {"currency": inv.currency, "open": 0, "overdue": 0,
                                                     "credit": 0, "due": 0, "aging": [0] * (len(buckets) + 2)})
            total["open"] += open_amount
            total["due"] += pos.due
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
                                                    "credit": 0, "due": 0, "aging": [0] * (len(buckets) + 2)})
            total["credit"] += available

        labels = [tr.gettext("Not yet due"),
                  *(tr.gettext("%(low)d–%(high)d days") % {"low": lo + 1, "high": hi}
                    for lo, hi in zip((0, *buckets), buckets, strict=False)),
                  tr.ngettext("Over %(num)d day", "Over %(num)d days", buckets[-1]) % {"num": buckets[-1]}]
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
                               lambda d: self._date(d, locale), tr)
        base = {
            "lang": html_lang(locale, self.settings.default_locale), "csp": self.csp, "assets": self.assets.urls,
            "company": {"name": self.settings.company_name, "support_email": self.settings.support_email},
            "customer": customer, "collector": customer.collector,
            "as_of_iso": data.as_of.isoformat().replace("+00:00", "Z"),
            "as_of_text": self._moment(data.as_of, locale) + " UTC",
        }
        page_token = self.signer.page_token("page", customer.customer_id, data.key_version)
        forms = {"enabled": True, "page_token": page_token, "question_action": f"{self.webhook}/question",
                 "dispute_action": f"{self.webhook}/dispute", "reasons": reason_choices(self.settings, tr),
                 "email": customer.collector or self.settings.support_email,
                 "contacts_action": f"{self.webhook}/contacts", "approval_action": f"{self.webhook}/approval",
                 "promise_action": f"{self.webhook}/promise", "promise_max_days": self.settings.promise_max_days,
                 "promise_min_percent": self.settings.promise_min_percent}
        pay = {"enabled": self.settings.payments_enabled, "page_token": page_token,
               "action": f"{self.webhook}/pay", "preselect": False, "partial": self.settings.partial_payments,
               "credits": [c for c in credits if c["available"] > 0],
               "lang": locale.replace("_", "-"),
               # The customer's number symbols: pay.js reads typed amounts as the webhook does (parse_typed_amount).
               "decimal": get_decimal_symbol(locale), "group": get_group_symbol(locale),
               "methods": [{"value": m, "label": tr.gettext(label), "bps": adjustment_bps(self.settings, m),
                            "note": _method_note(adjustment_bps(self.settings, m), locale, tr)}
                           for m, label in METHODS.items()]}

        history = (payments or {}).get(customer.customer_id, [])
        day = lambda d: self._date(d, locale)  # noqa: E731 - the same formatter the rest of the page uses
        payment_list = payment_views(history, money, day, {v["invoice_id"]: v["slug"] for v in invoices})
        for view in payment_list:  # the stored reason is English: said as customer_reason words it, translated
            view["failure"] = tr.gettext(customer_reason(stored=view["failure"])) if view["failure"] else ""
        recent = paid_recently(history, {v["invoice_id"] for v in invoices}, data.as_of, money, day)

        statement_pdf_view = None
        planned = planned if planned is not None else {}
        if self.settings.render_pdfs:
            pdf_base = documents.base_payload(self.letterhead, self.settings, data)
            for view in payment_list:
                if view["receipt"]:
                    doc = documents.plan(f"receipt:{view['attempt_id']}", "",
                                         documents.receipt_payload(pdf_base, view))
                    planned[doc.document_id] = doc
                    view["pdf_url"] = doc_link(doc.document_id, "", doc.name)
            doc = documents.plan(documents.STATEMENT, "",
                                 documents.statement_payload(pdf_base, base["as_of_text"], statements))
            planned[doc.document_id] = doc
            statement_pdf_view = {"url": doc_link(doc.document_id, "", doc.name)}

        def page(path: str, template: str, depth: int, **context: object) -> None:
            root = "../" * depth
            beacon_item = context.get("inv", {}).get("invoice_id", "") if template == "invoice" else template
            html = templates[template].render(
                **base, **context, page=template, root=root, up="../" if depth == 3 else "",
                beacon_url=f"{self.webhook}/r/"
                           f"{self.signer.page_token('view', customer.customer_id, data.key_version, beacon_item)}",
            ).encode()
            outputs.append(Output(path, hashlib.sha256(html).hexdigest(), len(html), html))

        page(f"c/{key}/index.html", "account", 2, invoices=invoices, credits=credits, totals=total_views,
             documents=account_docs, statement_pdf=statement_pdf_view, forms=forms,
             pay={**pay, "preselect": False}, payments=payment_list, paid_recently=recent,
             contacts=data.contacts,
             dues=[{"currency": t["currency"], "due_text": money(t["due"], t["currency"])}
                   for t in total_views if t["due"] > 0],
             methods=methods_view(self.settings, customer, page_token, (saved or {}).get(customer.customer_id),
                                  money))
        page(f"c/{key}/statement.html", "statement", 2, statements=statements, statement_pdf=statement_pdf_view)
        for inv, view in zip(data.invoices, invoices, strict=True):
            lines = [{"description": ln.description, "quantity_text": format_quantity(ln.quantity, locale),
                      "unit_price_text": format_price(ln.unit_price, inv.currency, locale),
                      "amount_text": money(ln.amount, inv.currency)} for ln in data.lines.get(inv.invoice_id, [])]
            docs = list(docs_by_invoice.get(inv.invoice_id, ()))
            if self.settings.render_pdfs and inv.invoice_id not in supplied_invoice_pdf:
                lines_total = sum(ln.amount for ln in data.lines.get(inv.invoice_id, []))
                doc = documents.plan(f"invoice:{inv.invoice_id}", inv.invoice_id, documents.invoice_payload(
                    pdf_base, view, lines, lines_total, inv.amount, lambda minor, c=inv.currency: money(minor, c)))
                planned[doc.document_id] = doc
                docs.insert(0, {"title": tr.gettext("Invoice %(number)s (PDF)") % {"number": inv.number},
                                "kind_text": tr.gettext(KIND_TEXT["invoice"]), "size_text": "PDF",
                                "url": doc_link(doc.document_id, inv.invoice_id, doc.name)})
            page(f"c/{key}/i/{view['slug']}.html", "invoice", 3, inv=view, lines=lines, documents=docs,
                 forms=forms, pay={**pay, "preselect": True},
                 approvers=[c for c in data.contacts if c.role == "approver"],
                 dues=[{"currency": inv.currency, "due_text": view["payable_text"]}] if view["payable"] > 0 else [])
        for view in payment_list:
            if view["receipt"]:
                page(f"c/{key}/p/{view['slug']}.html", "receipt", 3, payment=view)
        return outputs


def _method_note(bps: int, locale: str = "en", t: NullTranslations | None = None) -> str:
    """"1% discount" / "2.5% fee" for the pay form's method labels (basis points, shown as a percentage in the
    customer's locale: "2,5 %" in German)."""
    if not bps:
        return ""
    t = t or translations_for(None)
    percent = format_percent(Decimal(abs(bps)) / 10000, format="#,##0.##%", locale=locale)
    return (t.gettext("%(percent)s discount") if bps < 0 else t.gettext("%(percent)s fee")) % {"percent": percent}


def _status(pos: rule.Position, days_late: int, under_review: bool, t: NullTranslations | None = None
            ) -> tuple[str, str]:
    """(badge style, text) of an invoice: the position's status (portal/balances/position.py), and for what is still
    to be paid, when it falls due (a presentation on top of the position, never a status of its own). `t`: the
    customer's translations (None: English)."""
    t = t or translations_for(None)
    status = t.gettext(pos.status_text)
    if pos.status == rule.IN_DISPUTE:
        return "disputed", (t.gettext("%(status)s · under review") % {"status": status} if under_review else status)
    if pos.status == rule.PAID:
        return "paid", status
    if pos.status == rule.PAYMENT_PENDING:
        return "pending", status
    if pos.status not in rule.ASKABLE:
        return "current", status
    if days_late > 0:
        return "overdue", t.ngettext("%(status)s · overdue %(num)d day", "%(status)s · overdue %(num)d days",
                                     days_late) % {"status": status, "num": days_late}
    if days_late == 0:
        return "due", t.gettext("%(status)s · due today") % {"status": status}
    return "current", t.ngettext("%(status)s · due in %(num)d day", "%(status)s · due in %(num)d days",
                                 -days_late) % {"status": status, "num": -days_late}


def _bucket(days_late: int, buckets: tuple[int, ...]) -> int:
    if days_late <= 0:
        return 0
    for index, limit in enumerate(buckets, start=1):
        if days_late <= limit:
            return index
    return len(buckets) + 1


