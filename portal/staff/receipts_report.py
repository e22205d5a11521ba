"""The receipts report (`portal report receipts`; the digest's unviewed invoices). Per invoice, what was sent,
fetched, viewed by a person, and downloaded, and what the invoice owes now (`open`, `disputed`, `pending`, `due`,
`status`: its stored position, portal/balances/position.py; `balance` is the export's, for reference).

The two receipts mean different things and are never added together:
- `link_opened` counts fetches of an emailed link. Mail security scanners fetch links too, so this shows
  that the email arrived somewhere, not that anyone read it.
- `page_viewed` counts views of the invoice's own page reported by the page's script in a browser that
  displayed it: a person looked at the invoice. `first_viewed_at` comes from these only.
`account_viewed` counts views of the customer's account or statement page while the invoice was listed
there (between its first import and its closing): the invoice was on screen, but its page was not opened.
`approved_at`/`approved_by`: when and by which approver address the invoice was first approved for payment (empty
when it was not), the rule of the staff receipts table.

The report is one aggregate query (GROUP BY), whatever the number of invoices.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

from portal.core.money import to_decimal
from portal.staff.csvcells import iso_utc
from portal.staff.exports import to_csv, to_json
from portal.store.approvals import first_approval
from portal.store.database import Store
from portal.store.positions import invoice_positions
from portal.store.tables import customers, events, invoices

RECEIPT_COLUMNS = [
    "customer_id", "customer_name", "invoice_id", "number", "is_open", "due_date", "currency", "amount",
    "balance", "open", "status", "emails_sent", "link_opened", "page_viewed", "account_viewed", "documents_viewed",
    "first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at", "approved_at", "approved_by",
]
# Column headings for people: the two receipts are labelled for what they prove.
RECEIPT_LABELS = {
    "emails_sent": "Emails sent",
    "link_opened": "Link fetched (may be a mail scanner)",
    "page_viewed": "Viewed by a person",
    "account_viewed": "Seen on account page",
    "documents_viewed": "Documents opened",
    "first_viewed_at": "First viewed",
}



def receipts(store: Store, unopened_days: int | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """One dict per invoice: every open invoice, and closed invoices that have events.

    `unopened_days=N` keeps only open invoices with no `page_viewed` whose first `email_sent` (or, when none
    was recorded, the time the invoice first appeared in an export) is more than N days before `now`.
    """
    now = now or datetime.now(UTC)

    def count(kind: str) -> Any:
        return func.coalesce(func.sum(case((events.c.kind == kind, 1), else_=0)), 0)

    def first(kind: str) -> Any:
        return func.min(case((events.c.kind == kind, events.c.occurred_at)))

    per_invoice = (
        select(events.c.customer_id, events.c.invoice_id,
               count("email_sent").label("emails_sent"), count("link_opened").label("link_opened"),
               count("page_viewed").label("page_viewed"), count("document_viewed").label("documents_viewed"),
               first("email_sent").label("first_sent_at"), first("link_opened").label("first_opened_at"),
               first("page_viewed").label("first_viewed_at"),
               func.max(case((events.c.kind == "page_viewed", events.c.occurred_at))).label("last_viewed_at"))
        .where(events.c.invoice_id != "")
        .group_by(events.c.customer_id, events.c.invoice_id)
    ).subquery("per_invoice")
    # Account and statement page views while the invoice was on that page (a range join, still one query).
    listed = (
        select(invoices.c.invoice_id, func.count(events.c.event_id).label("account_viewed"))
        .select_from(invoices.join(events, and_(
            events.c.customer_id == invoices.c.customer_id, events.c.invoice_id == "",
            events.c.kind == "page_viewed", events.c.occurred_at >= invoices.c.first_seen_at,
            or_(invoices.c.closed_at.is_(None), events.c.occurred_at <= invoices.c.closed_at))))
        .group_by(invoices.c.invoice_id)
    ).subquery("listed")

    zero = literal(0)
    pos = invoice_positions.c
    query = (
        select(invoices.c.customer_id, func.coalesce(customers.c.name, "").label("customer_name"),
               invoices.c.invoice_id, invoices.c.number, invoices.c.is_open, invoices.c.due_date,
               invoices.c.currency, invoices.c.amount, invoices.c.balance, invoices.c.first_seen_at,
               pos.status, pos.open_amount, pos.disputed_amount, pos.pending_amount,
               func.coalesce(per_invoice.c.emails_sent, zero).label("emails_sent"),
               func.coalesce(per_invoice.c.link_opened, zero).label("link_opened"),
               func.coalesce(per_invoice.c.page_viewed, zero).label("page_viewed"),
               func.coalesce(listed.c.account_viewed, zero).label("account_viewed"),
               func.coalesce(per_invoice.c.documents_viewed, zero).label("documents_viewed"),
               per_invoice.c.first_sent_at, per_invoice.c.first_opened_at, per_invoice.c.first_viewed_at,
               per_invoice.c.last_viewed_at, per_invoice.c.invoice_id.label("has_events"),
               *[expr.label(name) for name, expr in zip(("approved_at", "approved_by"), first_approval(
                   invoices.c.customer_id, invoices.c.invoice_id), strict=True)])
        .select_from(invoices
                     .outerjoin(customers, customers.c.customer_id == invoices.c.customer_id)
                     .outerjoin(per_invoice, and_(per_invoice.c.invoice_id == invoices.c.invoice_id,
                                                  per_invoice.c.customer_id == invoices.c.customer_id))
                     .outerjoin(listed, listed.c.invoice_id == invoices.c.invoice_id)
                     .outerjoin(invoice_positions, pos.invoice_id == invoices.c.invoice_id))
        .where(or_(invoices.c.is_open, per_invoice.c.invoice_id.is_not(None)))
        .order_by(invoices.c.customer_id, invoices.c.due_date, invoices.c.invoice_id)
    )
    cutoff = now - timedelta(days=unopened_days) if unopened_days is not None else None
    rows = []
    with store.begin() as conn:
        for r in conn.execute(query):
            if cutoff is not None:
                sent = r.first_sent_at or r.first_seen_at
                if not r.is_open or r.page_viewed or sent is None or sent > cutoff:
                    continue
            rows.append({
                "customer_id": r.customer_id, "customer_name": r.customer_name, "invoice_id": r.invoice_id,
                "number": r.number, "is_open": bool(r.is_open), "due_date": r.due_date.isoformat(),
                "currency": r.currency, "amount": r.amount, "balance": r.balance,
                # What the invoice owes now and why (portal/balances/position.py); `balance` is the export's.
                "open": int(r.open_amount), "disputed": int(r.disputed_amount), "pending": int(r.pending_amount),
                "due": int(r.open_amount) - int(r.disputed_amount), "status": r.status,
                "emails_sent": int(r.emails_sent), "link_opened": int(r.link_opened),
                "page_viewed": int(r.page_viewed), "account_viewed": int(r.account_viewed),
                "documents_viewed": int(r.documents_viewed),
                "first_sent_at": iso_utc(r.first_sent_at), "first_opened_at": iso_utc(r.first_opened_at),
                "first_viewed_at": iso_utc(r.first_viewed_at), "last_viewed_at": iso_utc(r.last_viewed_at),
                # The first approval for payment (portal/store/approvals.py), as in the staff receipts table.
                "approved_at": iso_utc(r.approved_at), "approved_by": r.approved_by,
            })
    return rows



# --- output formats (the CLI's --format) ----------------------------------------------------------------------


TABLE_COLUMNS = [("customer_id", "Customer"), ("number", "Invoice"), ("open", "Open"), ("status", "Status"),
                 ("emails_sent", "Sent"), ("link_opened", "Fetched*"), ("page_viewed", "Viewed"),
                 ("account_viewed", "On account"), ("documents_viewed", "Docs"), ("first_viewed_at", "First viewed"),
                 ("approved_at", "Approved")]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table for people, with the footnote that keeps "fetched" from being read as "viewed"."""
    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if key == "open" and value is not None:
            return f"{to_decimal(value, row['currency'])} {row['currency']}"
        if value is None:
            return "-"
        if key.endswith("_at"):
            return str(value)[:16].replace("T", " ")
        return str(value)

    table = [[title for _, title in TABLE_COLUMNS]] + [[cell(r, k) for k, _ in TABLE_COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(TABLE_COLUMNS))]
    numeric = {k for k, _ in TABLE_COLUMNS if k in {"open", "emails_sent", "link_opened", "page_viewed",
                                                    "account_viewed", "documents_viewed"}}
    lines = []
    for line in table:
        cells = [text.rjust(w) if key in numeric else text.ljust(w)
                 for text, w, (key, _) in zip(line, widths, TABLE_COLUMNS, strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"{len(rows)} invoice(s). *Fetched: the emailed link was requested, possibly by a mail "
                 "security scanner. Viewed: a person's browser displayed the invoice page.")
    return "\n".join(lines) + "\n"


def format_rows(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """`fmt` is table, csv or json."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        return to_csv(rows, RECEIPT_COLUMNS)
    if fmt == "table":
        return format_table(rows)
    raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
