"""/staff pages and exports through the Flask app, on SQLite and PostgreSQL: what each page shows, that it
escapes what customers typed, refuses filters it cannot use with a message naming them, and that each CSV
download is the database's rows (the data layer's own tests check the queries in depth)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from portal.staff import receiptlines, receipts_table
from portal.staff.kpis import compute
from portal.staff.payments_report import cash_application_csv
from portal.store import tables
from tests.staff_helpers import PASSWORD, add_attempt, add_dispute, add_staff, approve_invoice, csrf, login
from tests.webhook_helpers import import_sample, make_app

EVIL = "<script>alert(1)</script> & Co"


@pytest.fixture
def ledger(store, settings, export_dir):
    ledger = import_sample(store, settings, export_dir)
    first = sorted(ledger.customers)[0]
    with store.begin() as conn:  # a customer name as hostile as an ERP can hold
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == first).values(name=EVIL))
    receiptlines.rebuild(store)  # edited by hand, not by an import: the export's lines follow
    return ledger


@pytest.fixture
def client(settings, tmp_path, ledger, store):
    add_staff(store, "admin@example.com", "admin")
    add_staff(store, "viewer@example.com", "viewer")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        client = app.test_client()
        assert login(client, "viewer@example.com").status_code == 302
        yield client


def _rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _sent(store, customer_id: str, invoice_id: str, days_ago: int, kind: str = "email_sent") -> None:
    with store.begin() as conn:
        conn.execute(insert(tables.events).values(
            kind=kind, occurred_at=datetime.now(UTC) - timedelta(days=days_ago), customer_id=customer_id,
            contact_id="c", invoice_id=invoice_id, document_id="", ip="", user_agent="", detail=""))


def test_the_overview_shows_the_kpis_with_accessible_charts(client, store):
    html = client.get("/staff/").get_data(as_text=True)
    k = compute(store)
    assert k.open_ar
    for currency in k.open_ar:
        assert f"Open AR, {currency}" in html
        assert f'<svg class="chart" role="img" aria-labelledby="aging-{currency}-title aging-{currency}-desc"' in html
    assert "<desc id=\"viewed-desc\">no data yet</desc>" in html  # nothing emailed yet: said, not drawn as 0%
    assert "What each figure means" in html


def test_receipts_escape_filter_sort_and_page(client, store, ledger):
    html = client.get("/staff/receipts").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html and "<script>alert(1)" not in html
    open_invoices = [i for i in ledger.invoices.values() if i.balance > 0]
    assert f"{len(open_invoices)} invoices" in html

    target = sorted(open_invoices, key=lambda i: i.invoice_id)
    _sent(store, target[0].customer_id, target[0].invoice_id, 10)
    _sent(store, target[1].customer_id, target[1].invoice_id, 10)
    _sent(store, target[1].customer_id, target[1].invoice_id, 9, "page_viewed")
    unopened = client.get("/staff/receipts?unopened=7").get_data(as_text=True)
    # Invoices never emailed count from when they first appeared (minutes ago here), so only target[0] shows.
    assert "1 invoices" in unopened and target[0].number in unopened and target[1].number not in unopened

    # The "Open" column sorts by what each invoice owes now (its position; nothing was paid in the portal here,
    # so that is its export balance).
    by_open = client.get("/staff/receipts?sort=open&dir=desc").get_data(as_text=True)
    assert 'aria-sort="descending"' in by_open
    top = max(open_invoices, key=lambda i: (i.balance, i.invoice_id))
    first_row = by_open.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert top.number in first_row


def test_receipts_show_who_approved_an_invoice_for_payment(client, store, ledger, settings):
    invoice = sorted((i for i in ledger.invoices.values() if i.balance > 0), key=lambda i: i.invoice_id)[1]
    approve_invoice(store, settings, invoice.customer_id, invoice.invoice_id, "r&d.boss@customer.example")
    html = client.get(f"/staff/receipts?customer={invoice.customer_id}").get_data(as_text=True)
    assert '<th scope="col">Approved for payment</th>' in html
    row = next(r for r in html.split("<tbody>", 1)[1].split("</tr>") if f">{invoice.number}</a>" in r)
    assert "by r&amp;d.boss@customer.example" in row and "r&d.boss" not in html
    others = [r for r in html.split("<tbody>", 1)[1].split("</tr>")[:-1] if f">{invoice.number}</a>" not in r]
    assert others and not any("customer.example" in r for r in others)
    exported = {r["invoice_id"]: r for r in _rows(client.get("/staff/receipts.csv"))}
    assert exported[invoice.invoice_id]["approved_by"] == "r&d.boss@customer.example"
    assert exported[invoice.invoice_id]["approved_at"].endswith("Z")


def test_unusable_filters_and_sorts_get_a_400_that_names_them(client):
    for query, words in [("unopened=soon", 'Unopened after (days): "soon"'), ("min=12,5x", 'Minimum open amount'),
                         ("currency=XYZ", 'Currency: "XYZ"'), ("sort=password", "password"), ("page=0", "Page")]:
        response = client.get(f"/staff/receipts?{query}")
        assert response.status_code == 400, query
        assert words.replace('"', "&#34;") in response.get_data(as_text=True) or \
            words in response.get_data(as_text=True), query
    assert client.get("/staff/receipts.csv?sort=nope").status_code == 400
    # More decimals than the currency has: refused, not rounded.
    assert client.get("/staff/receipts?currency=USD&min=12.345").status_code == 400
    assert client.get("/staff/payments?sort=nope").status_code == 400


def test_receipts_csv_is_the_filtered_table_every_page_of_it(client, store, ledger):
    exported = _rows(client.get("/staff/receipts.csv?sort=balance&dir=desc"))
    expected = receipts_table.receipts_page(store, receipts_table.ReceiptFilter(), sort="balance", descending=True,
                                         per_page=500).rows
    assert [r["invoice_id"] for r in exported] == [r["invoice_id"] for r in expected]
    with store.begin() as conn:
        balances = dict(conn.execute(select(tables.invoices.c.invoice_id, tables.invoices.c.balance)).all())
        currencies = dict(conn.execute(select(tables.invoices.c.invoice_id, tables.invoices.c.currency)).all())
    from portal.core.money import to_decimal

    for row in exported:
        assert row["balance"] == str(to_decimal(balances[row["invoice_id"]], currencies[row["invoice_id"]]))
    customer = sorted(ledger.customers)[1]
    only = _rows(client.get(f"/staff/receipts.csv?customer={customer}"))
    assert only and {r["customer_id"] for r in only} == {customer}


def test_payments_page_shows_status_method_allocations_stripe_ids_and_failures(client, store, ledger):
    c1 = sorted(ledger.customers)[0]
    inv = next(i for i in ledger.invoices.values() if i.customer_id == c1)
    add_attempt(store, "att-ok", c1, "succeeded", 12345, currency=inv.currency,
                allocations=[(inv.invoice_id, inv.number, 12345, 12345)], payment_intent="pi_3Ok", charge="ch_3Ok")
    add_attempt(store, "att-ach", c1, "processing", 500, currency=inv.currency, method="us_bank_account",
                allocations=[(inv.invoice_id, inv.number, 500, 500)])
    add_attempt(store, "att-bad", c1, "failed", 700, currency=inv.currency, method="us_bank_account",
                allocations=[(inv.invoice_id, inv.number, 700, 0)], failure_reason="insufficient funds")
    html = client.get("/staff/payments").get_data(as_text=True)
    for text in ("pi_3Ok", "ch_3Ok", "insufficient funds", inv.number, ">pending<", "&lt;script&gt;"):
        assert text in html, text
    pending = client.get("/staff/payments?status=processing").get_data(as_text=True)
    assert "1 payments" in pending and "pi_3Ok" not in pending
    assert [r["attempt_id"] for r in _rows(client.get("/staff/payments.csv?sort=amount&dir=asc"))] == \
        ["att-ach", "att-bad", "att-ok"]
    cash = client.get("/staff/cash-application.csv")
    assert cash.get_data(as_text=True) == cash_application_csv(store)


def test_disputes_queue_shows_the_message_escaped_and_exports(client, store, ledger):
    c1 = sorted(ledger.customers)[0]
    inv = next(i for i in ledger.invoices.values() if i.customer_id == c1)
    dispute_id = add_dispute(store, c1, "open", 999, currency=inv.currency, items=[(inv.invoice_id, inv.number, 999)],
                             message="<img src=x onerror=alert(1)> wrong price", attachments=1)
    html = client.get("/staff/disputes?state=open").get_data(as_text=True)
    assert f"D-{dispute_id}" in html and "&lt;img src=x onerror=alert(1)&gt; wrong price" in html
    assert "Resolve" not in html  # a viewer sees the queue, not the actions
    exported = _rows(client.get("/staff/disputes.csv"))
    assert [r["reference"] for r in exported] == [f"D-{dispute_id}"]
    # After an action the page states the dispute's real state; a link cannot put its own words there.
    assert f'role="status">D-{dispute_id} is open<' in client.get(f"/staff/disputes?done={dispute_id}").get_data(
        as_text=True)
    crafted = client.get("/staff/disputes?done=Call+0800+to+confirm+your+password")
    assert crafted.status_code == 400 and 'role="status"' not in crafted.get_data(as_text=True)


def test_customer_search_and_timeline(client, store, ledger):
    c1 = sorted(ledger.customers)[0]
    inv = next(i for i in ledger.invoices.values() if i.customer_id == c1)
    _sent(store, c1, inv.invoice_id, 3)
    _sent(store, c1, inv.invoice_id, 2, "page_viewed")
    found = client.get("/staff/customers?q=alert").get_data(as_text=True)
    assert f"/staff/customer?id={c1}" in found
    timeline = client.get(f"/staff/customer?id={c1}").get_data(as_text=True)
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</h1>" in timeline
    assert inv.number in timeline and "2 events" in timeline
    exported = _rows(client.get(f"/staff/customer.csv?id={c1}"))
    assert len(exported) == 2 and {r["invoice_id"] for r in exported} == {inv.invoice_id}
    other = next(i for i in ledger.invoices.values() if i.customer_id == c1 and i.invoice_id != inv.invoice_id)
    _sent(store, c1, other.invoice_id, 1)
    one = client.get(f"/staff/customer?id={c1}&invoice={inv.invoice_id}").get_data(as_text=True)
    assert "2 events" in one and "Who received, fetched, viewed and downloaded this invoice" in one
    assert "Viewed by a person" in one and other.number not in one
    assert len(_rows(client.get(f"/staff/customer.csv?id={c1}&invoice={inv.invoice_id}"))) == 2
    receipts = client.get(f"/staff/receipts?customer={c1}").get_data(as_text=True)
    assert f"/staff/customer?id={c1}&amp;invoice={inv.invoice_id}" in receipts
    assert client.get("/staff/customer?id=nobody").status_code == 404
    assert client.get("/staff/customer.csv?id=nobody").status_code == 404


def test_an_admin_adds_and_disables_staff_from_the_page(client, store):
    admin = client.application.test_client()
    login(admin, "admin@example.com")
    token = csrf(admin, "/staff/users")
    added = admin.post("/staff/users", data={"csrf_token": token, "email": "New@Example.com", "password": PASSWORD,
                                             "role": "viewer"})
    assert added.status_code == 302
    weak = admin.post("/staff/users", data={"csrf_token": token, "email": "w@example.com", "password": "short",
                                            "role": "viewer"})
    assert weak.status_code == 400 and "at least 12 characters" in weak.get_data(as_text=True)
    newcomer = client.application.test_client()
    assert login(newcomer, "new@example.com").status_code == 302
    assert admin.post("/staff/users/update", data={"csrf_token": token, "email": "new@example.com",
                                                   "action": "disable"}).status_code == 302
    assert newcomer.get("/staff/").status_code == 302
    last = admin.post("/staff/users/update", data={"csrf_token": token, "email": "admin@example.com",
                                                   "role": "viewer"})
    assert last.status_code == 400 and "last active admin" in last.get_data(as_text=True)


def test_attachments_reach_staff_only(client, store, ledger, settings, tmp_path):
    c1 = sorted(ledger.customers)[0]
    inv = next(i for i in ledger.invoices.values() if i.customer_id == c1)
    dispute_id = add_dispute(store, c1, "open", 100, items=[(inv.invoice_id, inv.number, 100)], attachments=1)
    # In the private folder, outside the site folder a static host would serve (docs/disputes.md).
    private = Path(client.application.extensions["portal"].settings.effective_private_target)
    stored = private / "disputes" / "x" / "1"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"%PDF-1.4 proof")
    got = client.get(f"/staff/disputes/{dispute_id}/attachments/1")
    assert got.status_code == 200 and got.data == b"%PDF-1.4 proof"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert client.get(f"/staff/disputes/{dispute_id}/attachments/2").status_code == 404
    anonymous = client.application.test_client()
    assert anonymous.get(f"/staff/disputes/{dispute_id}/attachments/1").status_code == 302
