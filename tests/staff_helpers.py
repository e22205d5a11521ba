"""Helpers for the staff tests: staff users, a logged-in Flask test client, and payment attempts and disputes
stored as the webhook stores them (for the tables, reports and KPIs to show)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from portal.staff.users import add_user
from portal.store import disputes as disputestore
from portal.store import payments as paystore
from portal.store.database import Store
from tests.webhook_helpers import hidden_field

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # the staff tests' clock (tests/staff/test_kpis.py's today)


def add_staff(store: Store, email: str, role: str = "viewer") -> None:
    add_user(store, email, PASSWORD, role)


def login(client: FlaskClient, email: str, password: str = PASSWORD, **request_args):
    """Log in through the real form (nonce cookie + signed field); returns the POST's response."""
    form = client.get("/staff/login", **request_args)
    assert form.status_code == 200, form.status_code
    token = hidden_field(form.get_data(as_text=True), "csrf_token")
    return client.post("/staff/login", data={"email": email, "password": password, "csrf_token": token},
                       **request_args)


def csrf(client: FlaskClient, path: str = "/staff/") -> str:
    """The session's CSRF token, read from a page's logout form."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return hidden_field(page.get_data(as_text=True), "csrf_token")


def add_attempt(store, attempt_id: str, customer_id: str, status: str, amount: int, *, currency: str = "USD",
                method: str = "card", allocations: list[tuple[str, str, int, int]] = (), created: datetime = NOW,
                **extra) -> None:
    """A payment attempt as the webhook stores it; allocations are (invoice_id, number, amount, applied)."""
    row = {"attempt_id": attempt_id, "customer_id": customer_id, "status": status, "method": method,
           "currency": currency, "subtotal": amount, "adjustment": 0, "amount": amount, "unapplied": 0,
           "credit_applied": 0, "refunded": 0, "needs_review": False, "payer_email": "", "checkout_session": "",
           "payment_intent": "", "charge": "", "failure_reason": "", "created_at": created, "updated_at": created,
           "counted_at": None, **extra}
    allocations = allocations or [("I1", "N-I1", amount, 0)]  # every real attempt pays at least one invoice
    with store.begin() as conn:
        paystore.insert_attempt(conn, row, [{"invoice_id": i, "number": n, "amount": a, "applied": ap}
                                            for i, n, a, ap in allocations])


def add_dispute(store, customer_id: str, status: str, amount: int, *, currency: str = "USD", reason: str = "pricing",
                items: list[tuple[str, str, int]] = (), attachments: int = 0, created: datetime = NOW,
                message: str = "Please check") -> int:
    row = {"customer_id": customer_id, "status": status, "reason": reason, "amount": amount, "currency": currency,
           "message": message, "outcome": "credit_issued" if status == "resolved" else "", "note": "",
           "updated_by": "", "created_at": created, "reviewed_at": None,
           "resolved_at": created + timedelta(days=2) if status == "resolved" else None}
    with store.begin() as conn:
        return disputestore.insert_dispute(
            conn, row, [{"invoice_id": i, "number": n, "amount": a} for i, n, a in items],
            [{"n": n, "filename": f"f{n}.pdf", "path": f"disputes/x/{n}", "content_type": "application/pdf",
              "size": 10, "sha256": "0" * 64} for n in range(1, attachments + 1)])


def parse_csv(chunks: Iterable[str]) -> list[dict[str, str]]:
    """A streamed CSV export's rows, by its header."""
    return list(csv.DictReader(io.StringIO("".join(chunks))))


def approve_invoice(store: Store, settings, customer_id: str, invoice_id: str, approver: str,
                    now: datetime | None = None) -> None:
    """An invoice approved for payment the way the portal records it: the customer's request to a typed address,
    staff's confirmation, then the approver's POST through a signed link (portal/selfservice/approvals.py)."""
    from portal.core.signing import Signer
    from portal.selfservice import approvals

    request = approvals.request_approval(store, customer_id, invoice_id, email=approver, now=now)
    approvals.confirm_typed(store, request.request_id, "admin@example.com", now=now)
    token = Signer(settings).action_token("approve", customer_id, store.active_key_version(customer_id),
                                          request.request_id)
    assert approvals.approve(store, Signer(settings), token, now=now).status == "approved"
