"""The root-cause chart on /staff/disputes, on SQLite and PostgreSQL: the counts, amounts (per currency) and median
days to resolve by reason are those of `dispute_root_causes` (what `portal report disputes --root-causes` prints),
drawn as labelled SVG with a table alternative, and a reason's text is escaped everywhere."""

from __future__ import annotations

import re

import pytest

from portal.staff.disputes_report import dispute_root_causes, format_root_causes
from tests.staff_helpers import add_dispute, add_staff, login
from tests.webhook_helpers import import_sample, make_app

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def client(settings, tmp_path, store, export_dir):
    ledger = import_sample(store, settings, export_dir)
    c1, c2 = sorted(ledger.customers)[:2]

    def on(customer_id, amount):
        invoice = next(i for i in ledger.invoices.values() if i.customer_id == customer_id)
        return [(invoice.invoice_id, invoice.number, amount)]

    add_dispute(store, c1, "open", 12000, reason="pricing", items=on(c1, 12000))
    add_dispute(store, c2, "resolved", 3000, reason="pricing", currency="EUR", items=on(c2, 3000))  # in two days
    add_dispute(store, c2, "open", 50000, reason="damaged", currency="EUR", items=on(c2, 50000))
    add_dispute(store, c1, "under_review", 700, reason=EVIL, items=on(c1, 700))
    add_staff(store, "viewer@example.com", "viewer")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        client = app.test_client()
        assert login(client, "viewer@example.com").status_code == 302
        yield client


def _svg(html: str, chart_id: str) -> str:
    found = re.search(rf'<svg [^>]*aria-labelledby="{chart_id}-title {chart_id}-desc".*?</svg>', html, re.S)
    assert found, chart_id
    return found.group(0)


def test_the_chart_and_its_table_say_what_the_root_cause_report_says(client, store):
    html = client.get("/staff/disputes").get_data(as_text=True)
    causes = dispute_root_causes(store)
    assert causes["count"] == 4 and causes["median_days_to_resolve"] == 2.0
    assert "All 4 dispute(s) ever recorded" in html and "Median days to resolve: 2.0." in html
    counts = _svg(html, "causes-count")
    assert "<title id=\"causes-count-title\">Disputes by reason (open ones in brackets)</title>" in counts
    # Counts add up across currencies (pricing: one in USD, one in EUR); the description states every bar in words.
    assert "pricing: 2 (1 open); &lt;script&gt;alert(1)&lt;/script&gt;: 1 (1 open); damaged: 1 (1 open)" in counts
    usd, eur = _svg(html, "causes-amount-USD"), _svg(html, "causes-amount-EUR")
    assert "pricing: $120.00" in usd and "damaged" not in usd  # amounts never added across currencies
    assert "damaged: €500.00; pricing: €30.00" in eur
    # The table: one row per reason and currency, each figure as the report gives it.
    rows = re.findall(r'<tr><th scope="row">(.*?)</th><td>(\w+)</td><td class="num">(\d+)</td><td class="num">'
                      r'(.*?)</td><td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">(.*?)</td></tr>',
                      html)
    assert [(reason, cur, int(n), int(o), int(r), days) for reason, cur, n, _, o, r, days in rows] == [
        (g["reason"].replace("<", "&lt;").replace(">", "&gt;"), g["currency"], g["count"], g["open"], g["resolved"],
         "-" if g["median_days_to_resolve"] is None else str(g["median_days_to_resolve"]))
        for g in causes["by_reason"]]
    assert [r[:3] for r in rows[:3]] == [("damaged", "EUR", "1"), ("pricing", "USD", "1"), ("pricing", "EUR", "1")]
    assert rows[2][6] == "2.0" and rows[2][3] == "€30.00"
    assert EVIL not in html  # escaped in the chart, its description and the table
    assert "pricing" in format_root_causes(causes, "table")  # the CLI prints the very same groups


def test_no_dispute_yet_draws_no_chart(settings, tmp_path, store, export_dir):
    import_sample(store, settings, export_dir)
    add_staff(store, "viewer@example.com", "viewer")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        client = app.test_client()
        assert login(client, "viewer@example.com").status_code == 302
        html = client.get("/staff/disputes").get_data(as_text=True)
    assert "All 0 dispute(s) ever recorded" in html and "none resolved yet" in html and "causes-count" not in html
