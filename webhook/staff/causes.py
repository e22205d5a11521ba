"""The disputes page's root-cause chart: why invoices are disputed, from `dispute_root_causes` (the same function
as `portal report disputes --root-causes`, so the page and the CLI cannot disagree). See docs/disputes.md.

Counts may be added across currencies (a dispute is a dispute); amounts never are, so there is one amount chart
per currency. The table under the charts states every figure, median days to resolve included: it is the text
alternative, and what a reader copies.
"""

from __future__ import annotations

from typing import Any

from portal.staff.charts import Bar, bar_chart
from portal.staff.disputes_report import dispute_root_causes
from portal.store.database import Store
from webhook.staff.blueprint import money


def root_cause_context(store: Store) -> dict[str, Any]:
    """`causes` (dispute_root_causes as returned) and `cause_charts`, (caption, chart) pairs: the count chart, then
    one amount chart per currency, for templates/staff/_dispute_causes.html."""
    causes = dispute_root_causes(store)
    rows = causes["by_reason"]
    counts: dict[str, list[int]] = {}
    for r in rows:  # several currencies of one reason make one count bar
        counted = counts.setdefault(r["reason"], [0, 0])
        counted[0] += r["count"]
        counted[1] += r["open"]
    bars = [Bar(_label(reason), n, f"{n} ({still} open)") for reason, (n, still) in
            sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    title = "Disputes by reason (open ones in brackets)"
    charts = [(title, bar_chart("causes-count", title, bars, label_width=170))]
    for currency in sorted({r["currency"] for r in rows}):
        mine = sorted((r for r in rows if r["currency"] == currency), key=lambda r: (-r["amount"], r["reason"]))
        title = f"Amount disputed by reason, {currency}"
        charts.append((title, bar_chart(f"causes-amount-{currency}", title, [
            Bar(_label(r["reason"]), r["amount"], money(r["amount"], currency)) for r in mine], label_width=170)))
    return {"causes": causes, "cause_charts": charts}


def _label(reason: str) -> str:
    return (reason or "no reason given").replace("_", " ")
