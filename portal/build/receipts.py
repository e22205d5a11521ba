"""What the payment history, the "paid recently" list and each receipt show, formatted for the customer.

Every amount is the store's (portal/payments/history.py reads the attempts, their allocations and the journal);
nothing here adds up an open amount. A payment's reference is what the receipt, its PDF and the staff pages show:
the attempt id, so a customer quoting it on the phone is found at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from portal.payments.history import Payment

# An invoice that a portal payment settled and the next export then dropped (the ERP closed it) stays listed
# this long, with "Paid on DATE" and its receipt: the customer sees where the money went.
RECENT_DAYS = 90


def payment_views(payments: list[Payment], money: Callable[[int, str], str], day: Callable[[date], str],
                  slug_of: dict[str, str]) -> list[dict]:
    """One view per payment, newest first. `slug_of`: invoice id -> its page slug, for invoices that have a page."""
    views = []
    for p in payments:
        when = p.settled_at or p.created_at
        views.append({
            "attempt_id": p.attempt_id, "reference": p.attempt_id, "state": p.state, "method": p.method,
            "date_iso": when.date().isoformat(), "date_text": day(when.date()),
            "created_text": day(p.created_at.date()),
            "settled_text": day(p.settled_at.date()) if p.settled_at else "",
            "amount_text": money(p.amount, p.currency), "subtotal_text": money(p.subtotal, p.currency),
            "adjustment": p.adjustment, "adjustment_text": money(abs(p.adjustment), p.currency),
            "credit_text": money(p.credit_applied, p.currency) if p.credit_applied else "",
            "refunded_text": money(p.refunded, p.currency) if p.refunded else "",
            "unapplied_text": money(p.unapplied, p.currency) if p.unapplied else "",
            "failure": p.failure_reason if p.status == "failed" else "",
            "invoices": [{"number": a.number, "slug": slug_of.get(a.item_id, ""), "amount_text": money(a.amount,
                                                                                                       p.currency)}
                         for a in p.invoices],
            "credits": [{"number": a.number, "amount_text": money(a.amount, p.currency)} for a in p.credits],
            "receipt": p.has_receipt, "slug": p.attempt_id, "pdf_url": "",
        })
    return views


def paid_recently(payments: list[Payment], on_page: set[str], as_of: datetime, money: Callable[[int, str], str],
                  day: Callable[[date], str]) -> list[dict]:
    """Invoices a settled portal payment paid within RECENT_DAYS of the export that no longer have a page (the
    export closed them): number, what the payment put on it, "Paid on" and the receipt's page."""
    since = as_of - timedelta(days=RECENT_DAYS)
    rows, seen = [], set()
    for p in payments:  # newest first: an invoice paid twice shows its latest payment
        if not p.has_receipt or p.settled_at is None or p.settled_at < since:
            continue
        for a in p.invoices:
            if a.item_id in on_page or a.item_id in seen:
                continue
            seen.add(a.item_id)
            rows.append({"number": a.number, "amount_text": money(a.amount, p.currency),
                         "paid_iso": p.settled_at.date().isoformat(), "paid_text": day(p.settled_at.date()),
                         "receipt_slug": p.attempt_id})
    return rows
