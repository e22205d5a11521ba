"""`portal digest`: one daily message per collector about what needs a person's attention.

- invoices still to be paid (their position, portal/balances/position.py: open or partly paid) for at least
  `digest_min_amount` that nobody viewed (`page_viewed`) `digest_unopened_days` after they were first emailed
  (or first exported, when never emailed): the "I never got it" candidates, with what they owe now;
- disputes opened and payments that failed in the last 24 hours (portal/store/disputes.py,
  portal/store/payments.py).

Customers go to their `collector` (customers.csv), else to `ar_inbox`, else to `support_email`. The
digest records nothing per invoice: it is staff mail, and counting it as an `email_sent` to the customer
would make the receipts lie.

It lives with the staff dashboard, not with the customer mail (portal/mail/), because it is the dashboard's
news for staff: its unviewed invoices are the receipts report's (portal/staff/receipts_report.py), and the mail
package only delivers it (portal/mail/delivery.py), as it delivers invoices and reminders.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from portal.balances.rule import ASKABLE
from portal.core.config import Settings
from portal.mail.delivery import Outgoing, SendResult, deliver
from portal.mail.messages import day, money, render_message
from portal.mail.transport import Transport
from portal.staff.receipts_report import receipts
from portal.store.database import Store
from portal.store.disputes import disputes
from portal.store.payments import payment_attempts
from portal.store.tables import customers


def recent_problems(conn: Connection, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """{"disputes": [...], "payment_attempts": [...]}: disputes opened and payment attempts that failed since
    `since`, oldest first. Each row: id, customer_id, amount, currency, and a short text (a dispute's reason,
    status and message; a payment's method and failure reason)."""
    d, p = disputes.c, payment_attempts.c
    opened = conn.execute(select(d.dispute_id, d.customer_id, d.amount, d.currency, d.reason, d.status, d.message)
                          .where(d.created_at >= since).order_by(d.created_at, d.dispute_id))
    failed = conn.execute(select(p.attempt_id, p.customer_id, p.amount, p.currency, p.method, p.failure_reason)
                          .where(p.updated_at >= since, p.status == "failed").order_by(p.updated_at, p.attempt_id))
    return {"disputes": [_problem(r.dispute_id, r, (r.reason, r.status, r.message)) for r in opened],
            "payment_attempts": [_problem(r.attempt_id, r, (r.method, r.failure_reason)) for r in failed]}


def _problem(key: object, row: Any, texts: tuple[object, ...]) -> dict[str, Any]:
    return {"id": str(key), "customer_id": row.customer_id, "amount": row.amount, "currency": row.currency,
            "text": " · ".join(str(t) for t in texts if t)}


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
