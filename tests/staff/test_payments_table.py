"""The payments table and its CSV export (portal/staff/payments_table.py): every attempt with its allocations and
where each invoice it paid stands now, filtered, sorted and paged by the database."""

from __future__ import annotations

from datetime import timedelta

from portal.staff.payments_table import payments_csv, payments_page
from tests.conftest import AS_OF
from tests.staff_helpers import add_attempt, parse_csv


def _status(invoice) -> str:
    """The status of an invoice nothing was paid on in the portal: from its export balance alone."""
    return "paid" if invoice.balance == 0 else "partly paid" if invoice.balance < invoice.amount else "open"


def test_payments_page_and_csv(store, ledger):
    c1, c2 = sorted(ledger.customers)[:2]
    invs = sorted((i for i in ledger.invoices.values() if i.customer_id == c1), key=lambda i: i.invoice_id)
    base = AS_OF - timedelta(days=5)
    add_attempt(store, "A1", c1, "succeeded", 15000, currency="USD", created=base,
                allocations=[(invs[0].invoice_id, invs[0].number, 10000, 10000),
                             (invs[1].invoice_id, invs[1].number, 5000, 4000)], unapplied=1000,
                payment_intent="pi_1", charge="ch_1", checkout_session="cs_1")
    add_attempt(store, "A2", c1, "failed", 2000, method="us_bank_account", created=base + timedelta(hours=1),
                allocations=[(invs[0].invoice_id, invs[0].number, 2000, 0)], failure_reason="insufficient funds")
    add_attempt(store, "A3", c2, "processing", 3000, method="us_bank_account", created=base + timedelta(hours=2),
                allocations=[("X", "N-X", 3000, 3000)])
    page = payments_page(store)
    assert [r["attempt_id"] for r in page.rows] == ["A3", "A2", "A1"] and page.total == 3  # newest first
    a1 = page.rows[2]
    # Each allocation with where its invoice stands now (the payments were before the export: its balance).
    assert a1["allocations"] == [{"invoice_id": invs[0].invoice_id, "number": invs[0].number, "amount": 10000,
                                  "applied": 10000, "open": invs[0].balance, "status": _status(invs[0])},
                                 {"invoice_id": invs[1].invoice_id, "number": invs[1].number, "amount": 5000,
                                  "applied": 4000, "open": invs[1].balance, "status": _status(invs[1])}]
    assert (a1["payment_intent"], a1["charge"], a1["checkout_session"], a1["unapplied"]) == ("pi_1", "ch_1", "cs_1",
                                                                                                1000)
    assert a1["customer_name"] == ledger.customers[c1].name and a1["needs_review"] is False
    assert [r["attempt_id"] for r in payments_page(store, status="failed").rows] == ["A2"]
    assert [r["attempt_id"] for r in payments_page(store, method="us_bank_account", sort="amount").rows] == \
        ["A3", "A2"]
    assert {r["attempt_id"] for r in payments_page(store, customer=c2).rows} == {"A3"}
    p2 = payments_page(store, per_page=2, page=2, sort="created_at", descending=False)
    assert [r["attempt_id"] for r in p2.rows] == ["A3"] and p2.pages == 2

    exported = parse_csv(payments_csv(store, sort="created_at", descending=False))
    assert [e["attempt_id"] for e in exported] == ["A1", "A2", "A3"]
    e1 = exported[0]
    assert (e1["amount"], e1["unapplied"], e1["invoice_numbers"], e1["allocated"], e1["applied"]) == (
        "150.00", "10.00", f"{invs[0].number};{invs[1].number}", "100.00;50.00", "100.00;40.00")
    assert e1["created_at"] == base.isoformat().replace("+00:00", "Z") and e1["needs_review"] == "false"
    assert (e1["invoice_open"], e1["invoice_status"]) == (
        f"{invs[0].balance / 100:.2f};{invs[1].balance / 100:.2f}", f"{_status(invs[0])};{_status(invs[1])}")
    assert exported[1]["failure_reason"] == "insufficient funds"
