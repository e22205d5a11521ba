"""`portal digest`: one daily message per collector about what needs a person's attention.

- invoices still to be paid (their position, portal/balances/position.py: open or partly paid) for at least
  `digest_min_amount` that nobody viewed (`page_viewed`) `digest_unopened_days` after they were first emailed
  (or first exported, when never emailed): the "I never got it" candidates, with what they owe now;
- disputes opened and payments that failed in the last 24 hours, read from the disputes and payments
  features' tables only when they exist in this database.

Customers go to their `collector` (customers.csv), else to `ar_inbox`, else to `support_email`. The
digest records nothing per invoice: it is staff mail, and counting it as an `email_sent` to the customer
would make the receipts lie.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy.engine import Connection

from portal.balances.rule import ASKABLE
from portal.core.config import Settings
from portal.mail.sending import Outgoing, SendResult, day, deliver, money
from portal.mail.transport import Transport, render_message
from portal.staff.reports import receipts
from portal.store.database import Store
from portal.store.tables import customers

PROBLEM_TABLES = {
    # table: (status filter, columns tried in order for "when", columns worth showing)
    "disputes": (None, ("created_at", "opened_at", "submitted_at"), ("reason", "status", "message")),
    "payment_attempts": ("failed", ("updated_at", "created_at"), ("method", "failure_reason")),
}


def recent_problems(conn: Connection, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """{"disputes": [...], "payment_attempts": [...]} created (or failed) since `since`; empty for a table
    this database does not have. Each row: id, customer_id, amount/currency when known, and a short text."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in PROBLEM_TABLES}
    inspector = inspect(conn)
    for name, (status, when_columns, text_columns) in PROBLEM_TABLES.items():
        if not inspector.has_table(name):
            continue
        table = Table(name, MetaData(), autoload_with=conn)
        when = next((table.c[c] for c in when_columns if c in table.c), None)
        if when is None or "customer_id" not in table.c:
            continue
        # Reflected columns are plain DateTime: the store keeps naive UTC (see store.UTCDateTime).
        query = select(table).where(when >= since.astimezone(UTC).replace(tzinfo=None))
        if status is not None and "status" in table.c:
            query = query.where(table.c.status == status)
        key = next(iter(table.primary_key.columns)).name
        for row in conn.execute(query.order_by(when)).mappings():
            found[name].append({
                "id": str(row[key]), "customer_id": row["customer_id"], "amount": row.get("amount"),
                "currency": row.get("currency"),
                "text": " · ".join(str(row[c]) for c in text_columns if row.get(c))})
    return found


def send_digest(settings: Settings, store: Store, dry_run: bool = False, now: datetime | None = None,
                transport: Transport | None = None, sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Send (or list) one digest per collector who has something to look at."""
    now = (now or datetime.now(UTC)).astimezone(UTC)  # calendar days are UTC days
    fallback = settings.ar_inbox or settings.support_email
    # "Nobody viewed it" matters only for what the customer may still be asked for: an invoice paid, with a
    # payment pending or in dispute in the portal was plainly seen (portal/balances/position.py).
    unviewed = [r for r in receipts(store, unopened_days=settings.digest_unopened_days, now=now)
                if r["status"] in ASKABLE and r["due"] >= settings.digest_min_amount]
    with store.begin() as conn:
        people = {r.customer_id: (r.collector or fallback, r.name, r.locale)
                  for r in conn.execute(select(customers.c.customer_id, customers.c.collector, customers.c.name,
                                               customers.c.locale))}
        problems = recent_problems(conn, now - timedelta(days=1))
    per_collector: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def bucket(customer_id: str) -> tuple[dict[str, list[dict[str, Any]]], str, str]:
        collector, name, locale = people.get(customer_id, (fallback, customer_id, settings.default_locale))
        return per_collector.setdefault(collector, {"invoices": [], "disputes": [], "payments": []}), name, locale

    for r in unviewed:
        lists, name, locale = bucket(r["customer_id"])
        sent = r["first_sent_at"]
        lists["invoices"].append({
            "customer": name, "customer_id": r["customer_id"], "number": r["number"],
            "due_date": day(date.fromisoformat(r["due_date"]), locale),
            "balance": money(r["due"], r["currency"], locale), "status": r["status"],
            "sent": sent[:10] if sent else "never emailed", "fetched": r["link_opened"] > 0})
    for table, label in (("disputes", "disputes"), ("payment_attempts", "payments")):
        for p in problems[table]:
            lists, name, locale = bucket(p["customer_id"])
            amount = money(p["amount"], p["currency"], locale) if p["amount"] is not None and p["currency"] else ""
            lists[label].append({"customer": name, "customer_id": p["customer_id"], "id": p["id"],
                                 "amount": amount, "text": p["text"]})
    outgoing = []
    for collector, lists in sorted(per_collector.items()):
        counts = f"{len(lists['invoices'])} unviewed invoice(s), {len(lists['disputes'])} new dispute(s), " \
                 f"{len(lists['payments'])} failed payment(s)"
        message = render_message(settings, "digest", ("", collector), f"AR digest {now:%Y-%m-%d}: {counts}",
                                 unopened_days=settings.digest_unopened_days, **lists)
        outgoing.append(Outgoing("digest", "", "", collector, message, [],
                                 [i["number"] for i in lists["invoices"]]))
    return deliver(settings, store, outgoing, dry_run, now, transport, sleep)
