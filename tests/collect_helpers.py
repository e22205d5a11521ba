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
