"""The disputes queue and its CSV export (portal/staff/disputes_table.py), and the state it reports after an action."""

from __future__ import annotations

from datetime import timedelta

from portal.staff.disputes_table import dispute_state, disputes_csv, disputes_page
from tests.conftest import AS_OF
from tests.staff_helpers import add_dispute, parse_csv


def test_disputes_page_and_csv(store, ledger):
    c1, c2 = sorted(ledger.customers)[:2]
    base = AS_OF - timedelta(days=9)
    d1 = add_dispute(store, c1, "open", 500, items=[("I1", "N-1", 300), ("I2", "N-2", 200)], attachments=2,
                     created=base, message="Wrong price,\n see \"PO\"")
    d2 = add_dispute(store, c2, "under_review", 700, reason="damaged", currency="EUR", items=[("I3", "N-3", 700)],
                     created=base + timedelta(days=1))
    d3 = add_dispute(store, c1, "resolved", 100, items=[("I4", "N-4", 100)], created=base + timedelta(days=2))
    page = disputes_page(store)
    assert [r["dispute_id"] for r in page.rows] == [d1, d2, d3]  # oldest first
    first = page.rows[0]
    assert (first["reference"], first["attachments"], first["numbers"], first["invoice_ids"]) == (
        f"D-{d1}", 2, ["N-1", "N-2"], ["I1", "I2"])
    assert first["message"].startswith("Wrong price") and first["customer_name"] == ledger.customers[c1].name
    assert [r["dispute_id"] for r in disputes_page(store, state="unresolved").rows] == [d1, d2]
    assert [r["dispute_id"] for r in disputes_page(store, state="resolved").rows] == [d3]
    assert [r["dispute_id"] for r in disputes_page(store, reason="damaged").rows] == [d2]
    assert [r["dispute_id"] for r in disputes_page(store, customer=c1, sort="amount", descending=True).rows] == \
        [d1, d3]
    exported = parse_csv(disputes_csv(store, state="unresolved"))
    assert [e["reference"] for e in exported] == [f"D-{d1}", f"D-{d2}"]
    assert (exported[0]["amount"], exported[0]["numbers"], exported[0]["message"], exported[1]["amount"]) == (
        "5.00", "N-1;N-2", "Wrong price,\n see \"PO\"", "7.00")


def test_the_state_after_an_action_is_said_from_the_database(store, ledger):
    """The queue's note after review or resolve names the dispute's state as stored; an unknown id says nothing."""
    dispute_id = add_dispute(store, sorted(ledger.customers)[0], "under_review", 100, items=[("I1", "N-1", 100)])
    assert dispute_state(store, dispute_id) == f"D-{dispute_id} is under review"
    assert dispute_state(store, dispute_id + 1) == ""
