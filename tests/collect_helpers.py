"""What the collector workbench's tests share (tests/collect/): their clock, and the staff they act as on the mail
ledger (tests/smtpserver.py `mail_ledger`, imported as of TODAY by tests/collect/conftest.py's `ledger`), where Cara
is C1's collector."""

from __future__ import annotations

from datetime import UTC, date, datetime

from portal.collect.access import Actor

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CARA = Actor("cara@supplier.example", "collector")  # C1's collector in mail_ledger
DAN = Actor("dan@supplier.example", "collector")
MIA = Actor("mia@supplier.example", "manager")
VIV = Actor("viv@supplier.example", "viewer")


def settling_bank_payment(store) -> None:
    """C1 pays I-OD5's 300.00 by bank account, still settling ("processing"): money that has not arrived."""
    from portal.balances import stored
    from tests.smtpserver import add_row

    at = datetime(2026, 12, 1, 10, 0)
    with store.begin() as conn:
        add_row(conn, "payment_attempts", attempt_id="pa1", customer_id="C1", status="processing",
                method="us_bank_account", currency="USD", subtotal=30000, amount=30000, created_at=at,
                updated_at=at, counted_at=at)
        add_row(conn, "payment_allocations", attempt_id="pa1", invoice_id="I-OD5", customer_id="C1",
                number="INV-OD5<i>", amount=30000, applied=30000)
    stored.rebuild(store)
