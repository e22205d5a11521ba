"""/staff payment plan forms through the Flask app, on SQLite and PostgreSQL: a collector previews the split,
edits it and saves it from the customer page; the invoice number is escaped; a viewer, a missing CSRF token,
typed amounts that do not add up and another customer's invoice are refused with nothing recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal.balances import position
from portal.store import tables
from portal.store.plans import payment_plans, plan_instalments
from tests.staff_helpers import add_staff, csrf, login
from tests.webhook_helpers import import_sample, make_app

EVIL = "<script>alert(1)</script> & Co"
CARA, VIV = "cara@example.com", "viv@example.com"


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


@pytest.fixture
def app(settings, tmp_path, ledger, store):
    add_staff(store, CARA, "collector")
    add_staff(store, VIV, "viewer")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        yield app


def _client(app, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _plannable(store, ledger):
    """(customer, an invoice of it that owes something and is not disputed, another customer's invoice)."""
    with store.begin() as conn:
        found = position.of_invoices(conn)
    first, second = sorted(ledger.customers)[:2]
    mine = sorted(i.invoice_id for i in ledger.invoices.values() if i.customer_id == first
                  and found[i.invoice_id].due > 0 and found[i.invoice_id].disputed == 0)
    other = sorted(i.invoice_id for i in ledger.invoices.values() if i.customer_id == second)
    return first, mine[0], found[mine[0]].due, other[0]


def _count(store, table) -> int:
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _form(client, customer_id, invoice_id, **extra):
    start = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
    return {"csrf_token": csrf(client), "customer_id": customer_id, "invoice": invoice_id, "frequency": "monthly",
            "start": start, "count": "3", **extra}


def test_a_collector_previews_edits_and_saves_a_plan_shown_escaped(app, store, ledger):
    customer_id, invoice_id, due, _ = _plannable(store, ledger)
    with store.begin() as conn:
        conn.execute(update(tables.invoices).where(tables.invoices.c.invoice_id == invoice_id).values(number=EVIL))
    cara = _client(app, CARA)
    page = cara.get(f"/staff/customer?id={customer_id}").get_data(as_text=True)
    assert "Split an invoice into instalments" in page
    shown = cara.post("/staff/customer/plan", data=_form(cara, customer_id, invoice_id, action="preview"))
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200 and text.count('name="amount"') == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in text and "<script>alert(1)" not in text
    assert _count(store, payment_plans) == 0  # a preview writes nothing
    first = due // 2
    amounts = [f"{first / 100:.2f}", "0.01", f"{(due - first - 1) / 100:.2f}"]
    saved = cara.post("/staff/customer/plan", data=_form(cara, customer_id, invoice_id, action="save",
                                                         amount=amounts))
    assert saved.status_code == 302 and saved.headers["Location"].endswith(f"id={customer_id}#plans")
    with store.begin() as conn:
        assert conn.execute(select(plan_instalments.c.amount).order_by(plan_instalments.c.seq)).scalars().all() \
            == [first, 1, due - first - 1]
    page = cara.get(f"/staff/customer?id={customer_id}").get_data(as_text=True)
    assert "Plan #1: invoice &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page and "<script>alert(1)" not in page
    assert "Cancel plan #1" in page


def test_amounts_that_do_not_add_up_and_another_customers_invoice_record_nothing(app, store, ledger):
    customer_id, invoice_id, due, other = _plannable(store, ledger)
    cara = _client(app, CARA)
    wrong = cara.post("/staff/customer/plan", data=_form(cara, customer_id, invoice_id, action="save",
                                                         amount=["1.00", "1.00", "1.00"]))
    assert wrong.status_code == 400 and "they must add up to" in wrong.get_data(as_text=True)
    theirs = cara.post("/staff/customer/plan", data=_form(cara, customer_id, other, action="save"))
    assert theirs.status_code == 400 and "is not an invoice of customer" in theirs.get_data(as_text=True)
    assert _count(store, payment_plans) == 0


def test_a_viewer_and_a_post_without_csrf_record_nothing(app, store, ledger):
    customer_id, invoice_id, _, _ = _plannable(store, ledger)
    viv = _client(app, VIV)
    assert "Split an invoice into instalments" not in viv.get(f"/staff/customer?id={customer_id}").get_data(
        as_text=True)
    assert viv.post("/staff/customer/plan", data=_form(viv, customer_id, invoice_id, action="save")).status_code == 403
    cara = _client(app, CARA)
    form = _form(cara, customer_id, invoice_id, action="save")
    del form["csrf_token"]
    assert cara.post("/staff/customer/plan", data=form).status_code in (400, 403)
    assert _count(store, payment_plans) == 0
    assert cara.post("/staff/customer/plan", data=_form(cara, customer_id, invoice_id, action="save")
                     ).status_code == 302
    assert viv.post("/staff/customer/plan/cancel", data={"csrf_token": csrf(viv), "customer_id": customer_id,
                                                         "plan_id": "1"}).status_code == 403
    with store.begin() as conn:
        assert conn.execute(select(payment_plans.c.status)).scalar_one() == "open"
