"""The staff dashboard's overview KPIs: a handful of aggregate queries, never a loop over customers.

Money is integer minor units per currency and is never added across currencies. Days are calendar days in
UTC; "now" is the time of the computation. `DEFINITIONS` holds the text the dashboard shows next to each
figure; it is the contract of what each number means.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, exists, func, select

from portal.balances.rule import CLOSED
from portal.core.money import to_decimal
from portal.staff import receiptrollup
from portal.staff.exports import to_csv
from portal.staff.receiptlock import invoice_join
from portal.store.database import Store
from portal.store.disputes import disputes
from portal.store.payments import payment_allocations, payment_attempts
from portal.store.positions import invoice_positions
from portal.store.staff import receipt_rollup
from portal.store.tables import events, invoices

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
# A payment that brought cash in (a partial refund keeps the rest; a full refund or chargeback does not count).
SETTLED = ("succeeded", "partially_refunded", "reinstated")
EPAY_WINDOW_DAYS = 90
DSO_WINDOW_DAYS = 90
WEEK_DAYS = 7

DEFINITIONS: dict[str, str] = {
    "open_ar": "Open AR: what the invoices in the latest ERP export still owe, per currency: each invoice's open "
               "amount (its position: the export's balance less portal payments settled or on their way since "
               "the export, amounts in dispute included; see docs/balances.md).",
    "overdue": "Overdue: the part of open AR whose invoices are past their due date (due date before today, "
               "UTC), per currency.",
    "aging": "Aging: open amounts by days past due (today minus the due date): current (not yet due), 1-30, "
             "31-60, 61-90 and over 90 days, per currency.",
    "viewed_pct": "Viewed by a person: of the invoices that were emailed at least once (an email_sent event "
                  "naming the invoice), the share whose invoice page a person has viewed at least once (a "
                  "page_viewed event from the page's script). Link fetches are not views: mail scanners fetch "
                  "links too. Empty when nothing was emailed.",
    "epay_pct": f"E-payment adoption: of the invoices that were settled in the last {EPAY_WINDOW_DAYS} days (left "
                "the ERP's open AR export, i.e. closed), the share that a portal payment paid (an allocation "
                "applied to the invoice by a payment that succeeded, or was only partly refunded). Empty when "
                "no invoice was settled in the window.",
    "payments_week": f"Payments this week: portal payments that succeeded in the last {WEEK_DAYS} days (7 x 24 "
                     "hours up to now, from the payment_succeeded event) and were not fully refunded or charged "
                     "back since: how many, and the amount charged, per currency.",
    "pending_ach": "Pending ACH: bank (ACH) payments started in the portal that are still processing (the bank "
                   "has not settled them yet): how many, and the amount, per currency.",
    "open_disputes": "Open disputes: disputes not resolved yet (open or under review): how many, and the amount "
                     "disputed, per currency.",
    "dso": f"DSO (days sales outstanding): open AR divided by the amount invoiced in the last {DSO_WINDOW_DAYS} "
           f"days (invoices by issue date, open or since paid), times {DSO_WINDOW_DAYS}; per currency. Empty "
           "when nothing was invoiced in that currency in the window.",
}


@dataclass
class Kpis:
    """Every figure of the overview; see DEFINITIONS. Money in minor units, per currency code."""

    now: datetime
    open_ar: dict[str, int] = field(default_factory=dict)
    open_invoices: dict[str, int] = field(default_factory=dict)
    overdue: dict[str, int] = field(default_factory=dict)
    aging: dict[str, dict[str, int]] = field(default_factory=dict)  # currency -> bucket -> amount
    invoices_sent: int = 0
    invoices_viewed: int = 0
    viewed_pct: float | None = None
    epay_settled: int = 0  # invoices settled in the window
    epay_paid: int = 0  # of those, paid by a portal payment
    epay_pct: float | None = None
    payments_week: dict[str, dict[str, int]] = field(default_factory=dict)  # currency -> {count, amount}
    pending_ach: dict[str, dict[str, int]] = field(default_factory=dict)  # currency -> {count, amount}
    open_disputes: int = 0
    disputed: dict[str, int] = field(default_factory=dict)  # currency -> amount in unresolved disputes
    dso: dict[str, float | None] = field(default_factory=dict)
    invoiced_window: dict[str, int] = field(default_factory=dict)  # currency -> amount invoiced (DSO's base)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["now"] = self.now.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return data


def _pct(part: int, whole: int) -> float | None:
    if not whole:
        return None
    return float((Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP))


def compute(store: Store, now: datetime | None = None, *, refresh: bool = True) -> Kpis:
    """All KPIs as of `now` (default: the current time). Refreshes the receipt rollup first (viewed_pct)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    if refresh:
        receiptrollup.refresh(store)
    k = Kpis(now=now)
    inv = invoices.c
    pos = invoice_positions.c  # what each invoice owes now, stored by portal/balances/position.py

    def past_due_between(lo: int, hi: int | None) -> Any:
        """Open amount of invoices lo..hi days past due (hi None: no upper bound)."""
        cond = pos.due_date <= today - timedelta(days=lo)
        if hi is not None:
            cond = and_(cond, pos.due_date >= today - timedelta(days=hi))
        return func.coalesce(func.sum(case((cond, pos.open_amount), else_=0)), 0)

    buckets = [("current", func.coalesce(func.sum(case((pos.due_date >= today, pos.open_amount), else_=0)), 0)),
               ("1-30", past_due_between(1, 30)), ("31-60", past_due_between(31, 60)),
               ("61-90", past_due_between(61, 90)), ("90+", past_due_between(91, None))]
    with store.begin() as conn:
        # 1. Open AR, overdue and aging: one pass over the positions of the invoices in the export.
        for r in conn.execute(select(pos.currency, func.count().label("n"), func.sum(pos.open_amount).label("open"),
                                     *[expr.label(f"b{i}") for i, (_, expr) in enumerate(buckets)])
                              .where(pos.status != CLOSED).group_by(pos.currency).order_by(pos.currency)):
            k.open_ar[r.currency] = int(r.open or 0)
            k.open_invoices[r.currency] = int(r.n)
            k.aging[r.currency] = {name: int(getattr(r, f"b{i}")) for i, (name, _) in enumerate(buckets)}
            k.overdue[r.currency] = k.open_ar[r.currency] - k.aging[r.currency]["current"]

        # 2. Viewed by a person, of the invoices emailed (rollup rows of real invoices of that customer).
        rr = receipt_rollup.c
        sent = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((rr.page_viewed > 0, 1), else_=0)), 0))
            .select_from(receipt_rollup.join(invoices, invoice_join()))
            .where(rr.emails_sent > 0)).one()
        k.invoices_sent, k.invoices_viewed = int(sent[0]), int(sent[1])
        k.viewed_pct = _pct(k.invoices_viewed, k.invoices_sent)

        # 3. E-payment adoption: invoices closed in the window; those a settled portal payment paid.
        pa = payment_allocations.c
        paid = exists().where(pa.invoice_id == inv.invoice_id, pa.customer_id == inv.customer_id, pa.applied > 0,
                              payment_attempts.c.attempt_id == pa.attempt_id,
                              payment_attempts.c.status.in_(SETTLED))
        settled = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((paid, 1), else_=0)), 0))
            .where(inv.is_open.is_(False), inv.closed_at >= now - timedelta(days=EPAY_WINDOW_DAYS),
                   inv.closed_at <= now)).one()
        k.epay_settled, k.epay_paid = int(settled[0]), int(settled[1])
        k.epay_pct = _pct(k.epay_paid, k.epay_settled)

        # 4. Payments this week (by their payment_succeeded event; ix_events_kind_occurred_at).
        pt = payment_attempts.c
        succeeded = exists().where(events.c.kind == "payment_succeeded",
                                   events.c.occurred_at >= now - timedelta(days=WEEK_DAYS),
                                   events.c.occurred_at <= now, events.c.detail == pt.attempt_id)
        for r in conn.execute(select(pt.currency, func.count(), func.sum(pt.amount))
                              .where(pt.status.in_(SETTLED), succeeded).group_by(pt.currency)):
            k.payments_week[r[0]] = {"count": int(r[1]), "amount": int(r[2] or 0)}

        # 5. Pending ACH.
        for r in conn.execute(select(pt.currency, func.count(), func.sum(pt.amount))
                              .where(pt.status == "processing", pt.method == "us_bank_account")
                              .group_by(pt.currency)):
            k.pending_ach[r[0]] = {"count": int(r[1]), "amount": int(r[2] or 0)}

        # 6. Open disputes.
        for r in conn.execute(select(disputes.c.currency, func.count(), func.sum(disputes.c.amount))
                              .where(disputes.c.status != "resolved").group_by(disputes.c.currency)):
            k.open_disputes += int(r[1])
            k.disputed[r[0]] = int(r[2] or 0)

        # 7. DSO: invoiced in the window, per currency.
        for r in conn.execute(select(inv.currency, func.sum(inv.amount))
                              .where(inv.issue_date > today - timedelta(days=DSO_WINDOW_DAYS), inv.issue_date <= today)
                              .group_by(inv.currency)):
            k.invoiced_window[r[0]] = int(r[1] or 0)
    for currency in sorted(set(k.open_ar) | set(k.invoiced_window)):
        sales = k.invoiced_window.get(currency, 0)
        k.dso[currency] = None if sales <= 0 else float(
            (Decimal(k.open_ar.get(currency, 0)) * DSO_WINDOW_DAYS / Decimal(sales)).quantize(
                Decimal("0.1"), ROUND_HALF_UP))
    return k


# --- `portal report kpis` ------------------------------------------------------------------------------------

CSV_COLUMNS = ["kpi", "currency", "key", "value"]


def _flat(k: Kpis) -> list[dict[str, Any]]:
    """One row per figure: (kpi, currency, key, value); money as decimal strings in major units."""
    rows: list[dict[str, Any]] = []

    def money(kpi: str, per: dict[str, int], key: str = "") -> None:
        rows.extend({"kpi": kpi, "currency": c, "key": key, "value": str(to_decimal(v, c))}
                    for c, v in sorted(per.items()))

    money("open_ar", k.open_ar)
    money("overdue", k.overdue)
    for currency, buckets in sorted(k.aging.items()):
        rows.extend({"kpi": "aging", "currency": currency, "key": b, "value": str(to_decimal(buckets[b], currency))}
                    for b in AGING_BUCKETS)
    rows += [{"kpi": "viewed_pct", "currency": "", "key": "sent", "value": k.invoices_sent},
             {"kpi": "viewed_pct", "currency": "", "key": "viewed", "value": k.invoices_viewed},
             {"kpi": "viewed_pct", "currency": "", "key": "pct", "value": k.viewed_pct},
             {"kpi": "epay_pct", "currency": "", "key": "settled", "value": k.epay_settled},
             {"kpi": "epay_pct", "currency": "", "key": "paid_in_portal", "value": k.epay_paid},
             {"kpi": "epay_pct", "currency": "", "key": "pct", "value": k.epay_pct}]
    for kpi, per in (("payments_week", k.payments_week), ("pending_ach", k.pending_ach)):
        for currency, v in sorted(per.items()):
            rows += [{"kpi": kpi, "currency": currency, "key": "count", "value": v["count"]},
                     {"kpi": kpi, "currency": currency, "key": "amount",
                      "value": str(to_decimal(v["amount"], currency))}]
    rows.append({"kpi": "open_disputes", "currency": "", "key": "count", "value": k.open_disputes})
    money("open_disputes", k.disputed, "amount")
    rows.extend({"kpi": "dso", "currency": c, "key": "days", "value": v} for c, v in sorted(k.dso.items()))
    return rows


def format_kpis(k: Kpis, fmt: str) -> str:
    """json (Kpis.to_dict: minor units), csv (CSV_COLUMNS, major units) or a table for people."""
    if fmt == "json":
        return json.dumps(k.to_dict(), indent=2, ensure_ascii=False) + "\n"
    rows = _flat(k)
    if fmt == "csv":
        return to_csv(rows, CSV_COLUMNS)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (table, csv or json)")
    lines = [[r["kpi"], r["currency"] or "-", r["key"] or "-", "-" if r["value"] is None else str(r["value"])]
             for r in rows]
    header = ["KPI", "Currency", "Figure", "Value"]
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.append("")
    out += [f"{name}: {text}" for name, text in DEFINITIONS.items()]
    return "\n".join(out) + "\n"
