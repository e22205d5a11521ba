"""Staff reports. Receipts: per invoice, what was sent, fetched, viewed by a person, and downloaded, and what the
invoice owes now (`open`, `disputed`, `pending`, `due`, `status`: its stored position, portal/balances/position.py;
`balance` is the export's, for reference).

The two receipts mean different things and are never added together:
- `link_opened` counts fetches of an emailed link. Mail security scanners fetch links too, so this shows
  that the email arrived somewhere, not that anyone read it.
- `page_viewed` counts views of the invoice's own page reported by the page's script in a browser that
  displayed it: a person looked at the invoice. `first_viewed_at` comes from these only.
`account_viewed` counts views of the customer's account or statement page while the invoice was listed
there (between its first import and its closing): the invoice was on screen, but its page was not opened.

Each report is one aggregate query (GROUP BY), whatever the number of invoices.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

from portal.balances import position
from portal.core.money import to_decimal
from portal.store import disputes as disputestore
from portal.store import payments as paystore
from portal.store.database import Store, customers, events, invoices

RECEIPT_COLUMNS = [
    "customer_id", "customer_name", "invoice_id", "number", "is_open", "due_date", "currency", "amount",
    "balance", "open", "status", "emails_sent", "link_opened", "page_viewed", "account_viewed", "documents_viewed",
    "first_sent_at", "first_opened_at", "first_viewed_at", "last_viewed_at",
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


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    pos = position.invoice_positions.c
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
               per_invoice.c.last_viewed_at, per_invoice.c.invoice_id.label("has_events"))
        .select_from(invoices
                     .outerjoin(customers, customers.c.customer_id == invoices.c.customer_id)
                     .outerjoin(per_invoice, and_(per_invoice.c.invoice_id == invoices.c.invoice_id,
                                                  per_invoice.c.customer_id == invoices.c.customer_id))
                     .outerjoin(listed, listed.c.invoice_id == invoices.c.invoice_id)
                     .outerjoin(position.invoice_positions, pos.invoice_id == invoices.c.invoice_id))
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
            })
    return rows


# --- output formats (the CLI's --format) --------------------------------------------------------------


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    """A JSON list, one object per row (the stable machine-readable form)."""
    return json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n"


# A cell a spreadsheet would run as a formula ("CSV injection"): customer names, notes and ids come from
# outside, and staff open these files in Excel. Plain numbers such as -12.50 are data and stay as they are.
# (portal/staff/tables.py writes the same rule in SQL for PostgreSQL's COPY: keep the two in step.)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_cell(value: Any) -> str:
    """One CSV cell, the single rule every CSV of the portal uses: None -> empty, booleans true/false, text
    starting with = + - @ tab or CR (other than a plain number) behind an apostrophe, and line breaks as LF
    (a lone CR would end the row in some readers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        text = "'" + text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] = RECEIPT_COLUMNS) -> str:
    """CSV with a header row; cells as `csv_cell` makes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return out.getvalue()


TABLE_COLUMNS = [("customer_id", "Customer"), ("number", "Invoice"), ("open", "Open"), ("status", "Status"),
                 ("emails_sent", "Sent"), ("link_opened", "Fetched*"), ("page_viewed", "Viewed"),
                 ("account_viewed", "On account"), ("documents_viewed", "Docs"), ("first_viewed_at", "First viewed")]


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
        return to_csv(rows)
    if fmt == "table":
        return format_table(rows)
    raise ValueError(f"unknown format {fmt!r} (table, csv or json)")


# --- payments ------------------------------------------------------------------------------------------------

PAYMENT_COLUMNS = [
    "attempt_id", "customer_id", "status", "method", "amount", "currency", "subtotal", "adjustment", "unapplied",
    "credit_applied",
    "refunded", "needs_review", "payer_email", "stripe_checkout_session", "stripe_payment_intent", "stripe_charge",
    "failure_reason", "created_at", "updated_at", "allocations", "credits",
]


def payments(store: Store) -> list[dict[str, Any]]:
    """One dict per payment attempt, oldest first. Amounts in minor units; `allocations` is a list of
    `{invoice_id, number, amount, applied}` (`applied` is what the invoice could take when the payment
    counted; the rest of the cash is `unapplied` and the attempt `needs_review`), `credits` a list of
    `{credit_id, number, amount, applied}` (credit notes used towards the invoices)."""
    with store.begin() as conn:
        attempts = paystore.all_attempts(conn)
        allocations = paystore.all_allocations(conn)
        credit_rows = paystore.all_allocations(conn, credits=True)
        now = position.stored(conn)
    return [{
        "attempt_id": a.attempt_id, "customer_id": a.customer_id, "status": a.status, "method": a.method,
        "amount": a.amount, "currency": a.currency, "subtotal": a.subtotal, "adjustment": a.adjustment,
        "unapplied": a.unapplied, "credit_applied": a.credit_applied, "refunded": a.refunded,
        "needs_review": a.needs_review,
        "payer_email": a.payer_email, "stripe_checkout_session": a.checkout_session or None,
        "stripe_payment_intent": a.payment_intent or None, "stripe_charge": a.charge or None,
        "failure_reason": a.failure_reason, "created_at": iso_utc(a.created_at), "updated_at": iso_utc(a.updated_at),
        "allocations": [{"invoice_id": r.invoice_id, "number": r.number, "amount": r.amount, "applied": r.applied,
                         **_standing(now.get(r.invoice_id))} for r in allocations.get(a.attempt_id, [])],
        "credits": [{"credit_id": r.credit_id, "number": r.number, "amount": r.amount, "applied": r.applied}
                    for r in credit_rows.get(a.attempt_id, [])],
    } for a in attempts]


def _standing(stored: tuple | None) -> dict[str, Any]:
    """An invoice's stored position (portal/balances/position.py) as the reports show it next to a payment or dispute:
    what it owes now (`open`, minor units) and its `status`."""
    if stored is None:
        return {"open": None, "status": None}
    return {"open": int(stored[1]), "status": stored[0]}


CASH_APPLICATION_COLUMNS = [
    "payment", "date", "customer_id", "invoice_id", "number", "amount_applied", "currency", "method",
    "stripe_payment_intent", "stripe_charge", "fee_or_discount", "status", "invoice_open", "invoice_status",
]
# Money the ERP should apply: settled payments (a partial refund stays, flagged for staff in `payments`).
_CASH_STATUSES = {"succeeded", "partially_refunded", "reinstated"}


def cash_application(store: Store) -> list[dict[str, Any]]:
    """Rows for the ERP's cash application: one per invoice a settled payment paid, plus one row with an empty
    invoice for cash no invoice could take (unapplied), and one negative row per credit note used (method
    `credit`, its number in `number`), so a payment's rows sum to the cash it brought in and kept. Amounts are
    what the payment settles on each item now (portal/balances/position.py's journal: a partial refund takes back
    unapplied cash first, then the last invoice's), in major units (as in the export); the payment's discount
    (negative) or fee (positive) is on its first row only. `invoice_open` / `invoice_status`: where the invoice
    stands now (its position), empty on the other rows."""
    with store.begin() as conn:
        settled = position.settled_by_attempt(conn)
    rows = []
    for p in payments(store):
        if p["status"] not in _CASH_STATUSES:
            continue
        def row(invoice_id: str, number: str, minor: int, adjustment: int, p: dict = p, method: str = "",
                standing: dict | None = None) -> dict[str, Any]:
            standing = standing or {"open": None, "status": None}
            return {"payment": p["attempt_id"], "date": (p["updated_at"] or "")[:10], "customer_id": p["customer_id"],
                    "invoice_id": invoice_id, "number": number,
                    "amount_applied": str(to_decimal(minor, p["currency"])), "currency": p["currency"],
                    "method": method or p["method"], "stripe_payment_intent": p["stripe_payment_intent"],
                    "stripe_charge": p["stripe_charge"], "fee_or_discount": str(to_decimal(adjustment, p["currency"])),
                    "status": p["status"],
                    "invoice_open": None if standing["open"] is None else str(to_decimal(standing["open"],
                                                                                         p["currency"])),
                    "invoice_status": standing["status"]}
        adjustment = p["adjustment"]
        for alloc in p["allocations"]:
            amount = settled.get((p["attempt_id"], "invoice", alloc["invoice_id"]), 0)
            if amount:
                rows.append(row(alloc["invoice_id"], alloc["number"], amount, adjustment,
                                standing={"open": alloc["open"], "status": alloc["status"]}))
                adjustment = 0
        kept = position.unapplied_kept(p["status"], p["refunded"], p["unapplied"])
        if kept:
            rows.append(row("", "", kept, adjustment))
            adjustment = 0
        for credit in p["credits"]:
            amount = settled.get((p["attempt_id"], "credit", credit["credit_id"]), 0)
            if amount:
                rows.append(row("", credit["number"], -amount, adjustment, method="credit"))
                adjustment = 0
    return rows


def cash_application_csv(store: Store) -> str:
    """The cash application file (CSV with a header row) for `portal report cash-application`."""
    return to_csv(cash_application(store), CASH_APPLICATION_COLUMNS)


# --- disputes ----------------------------------------------------------------------------------------------

DISPUTE_COLUMNS = ["dispute_id", "reference", "customer_id", "customer_name", "collector", "invoice_ids", "numbers",
                   "reason", "amount", "currency", "status", "outcome", "note", "created_at", "reviewed_at",
                   "resolved_at", "days_to_resolve", "invoice_open", "invoice_status"]


def disputes(store: Store) -> list[dict[str, Any]]:
    """One dict per dispute, oldest first (`portal report disputes`). `amount` in minor units; `invoice_ids` and
    `numbers` are lists; `days_to_resolve` is a float (null while unresolved); `outcome` is "" until resolved.
    The customer's message is left out: it is the customer's words, shown to staff on the dashboard only."""
    with store.begin() as conn:
        rows = disputestore.all_disputes(conn)
        items = disputestore.all_items(conn)
        now = position.stored(conn)
        people = {r.customer_id: (r.name, r.collector) for r in conn.execute(
            select(customers.c.customer_id, customers.c.name, customers.c.collector))}
    result = []
    for d in rows:
        name, collector = people.get(d.customer_id, ("", ""))
        days = (d.resolved_at - d.created_at).total_seconds() / 86400 if d.resolved_at else None
        result.append({
            "dispute_id": d.dispute_id, "reference": f"D-{d.dispute_id}", "customer_id": d.customer_id,
            "customer_name": name, "collector": collector,
            "invoice_ids": [i.invoice_id for i in items.get(d.dispute_id, [])],
            "numbers": [i.number for i in items.get(d.dispute_id, [])],
            "reason": d.reason, "amount": d.amount, "currency": d.currency, "status": d.status,
            "outcome": d.outcome, "note": d.note, "created_at": iso_utc(d.created_at),
            "reviewed_at": iso_utc(d.reviewed_at), "resolved_at": iso_utc(d.resolved_at),
            "days_to_resolve": None if days is None else round(days, 2),
            # Where each invoice disputed stands now (portal/balances/position.py), in the order of `invoice_ids`.
            "invoices": [{"invoice_id": i.invoice_id, "number": i.number, "amount": i.amount,
                          **_standing(now.get(i.invoice_id))} for i in items.get(d.dispute_id, [])],
        })
    return result


def dispute_root_causes(store: Store) -> dict[str, Any]:
    """Why invoices are disputed: `by_reason`, `by_customer`, `by_collector` (lists of rows with `count`,
    `amount` in minor units per `currency`, `open`, `resolved`, `median_days_to_resolve`, and per outcome
    counts under `outcomes`), plus the overall `median_days_to_resolve` (null before any resolution).
    Amounts are never added across currencies: each row is one key in one currency."""
    rows = disputes(store)

    def group(key: str) -> list[dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        days: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            k = (r[key] or "", r["currency"])
            g = found.setdefault(k, {key: k[0], "currency": k[1], "count": 0, "amount": 0, "open": 0,
                                     "resolved": 0, "outcomes": {}, "median_days_to_resolve": None})
            g["count"] += 1
            g["amount"] += r["amount"]
            if r["status"] == "resolved":
                g["resolved"] += 1
                g["outcomes"][r["outcome"]] = g["outcomes"].get(r["outcome"], 0) + 1
                days.setdefault(k, []).append(r["days_to_resolve"])
            else:
                g["open"] += 1
        for k, values in days.items():
            found[k]["median_days_to_resolve"] = round(statistics.median(values), 2)
        return sorted(found.values(), key=lambda g: (-g["count"], -g["amount"], g[key], g["currency"]))

    resolved = [r["days_to_resolve"] for r in rows if r["days_to_resolve"] is not None]
    return {"by_reason": group("reason"), "by_customer": group("customer_id"), "by_collector": group("collector"),
            "count": len(rows), "median_days_to_resolve": round(statistics.median(resolved), 2) if resolved else None}


def _dispute_cells(r: dict[str, Any]) -> dict[str, Any]:
    """A dispute row with its lists joined by ";" (one CSV or table cell each); each invoice's open amount in major
    units."""
    return {**r, "invoice_ids": ";".join(r["invoice_ids"]), "numbers": ";".join(r["numbers"]),
            "invoice_open": ";".join("" if i["open"] is None else str(to_decimal(i["open"], r["currency"]))
                                     for i in r["invoices"]),
            "invoice_status": ";".join(i["status"] or "" for i in r["invoices"])}


def _plain_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return out


def format_disputes(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """`portal report disputes`: `fmt` json (the stable form: lists stay lists, amounts in minor units), csv
    (DISPUTE_COLUMNS, lists joined by ";") or table (for people: amounts in major units)."""
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        return to_csv([_dispute_cells(r) for r in rows], DISPUTE_COLUMNS)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
    header = ["Dispute", "Customer", "Invoices", "Reason", "Amount", "Status", "Outcome", "Opened", "Days"]
    lines = [[r["reference"], r["customer_id"], ";".join(r["numbers"]), r["reason"],
              f"{to_decimal(r['amount'], r['currency'])} {r['currency']}", r["status"], r["outcome"] or "-",
              (r["created_at"] or "")[:10], "-" if r["days_to_resolve"] is None else str(r["days_to_resolve"])]
             for r in rows]
    return "\n".join([*_plain_table(header, lines), "", f"{len(rows)} dispute(s)."]) + "\n"


ROOT_CAUSE_COLUMNS = ["dimension", "key", "currency", "count", "amount", "open", "resolved", "median_days_to_resolve"]


def format_root_causes(causes: dict[str, Any], fmt: str) -> str:
    """`dispute_root_causes` as json (as returned), csv (ROOT_CAUSE_COLUMNS, one row per dimension, key and
    currency) or a table per dimension."""
    if fmt == "json":
        return json.dumps(causes, indent=2, ensure_ascii=False) + "\n"
    keys = {"by_reason": "reason", "by_customer": "customer_id", "by_collector": "collector"}
    flat = [{"dimension": dim, "key": g[key], **{k: g[k] for k in ROOT_CAUSE_COLUMNS[2:]}}
            for dim, key in keys.items() for g in causes[dim]]
    if fmt == "csv":
        return to_csv(flat, ROOT_CAUSE_COLUMNS)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
    out: list[str] = []
    for dim in ("by_reason", "by_customer", "by_collector"):
        lines = [[f["key"] or "-", f["currency"], str(f["count"]), str(to_decimal(f["amount"], f["currency"])),
                  str(f["open"]), str(f["resolved"]),
                  "-" if f["median_days_to_resolve"] is None else str(f["median_days_to_resolve"])]
                 for f in flat if f["dimension"] == dim]
        out += [dim.replace("_", " ").capitalize(), *_plain_table(
            ["Key", "Currency", "Count", "Amount", "Open", "Resolved", "Median days"], lines), ""]
    median = causes["median_days_to_resolve"]
    out.append(f"{causes['count']} dispute(s); median days to resolve: {'-' if median is None else median}.")
    return "\n".join(out) + "\n"
