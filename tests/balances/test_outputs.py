"""What each invoice owes, read back from each output: the cases of the issue that made it one rule.

A customer paid $200.00 of INV-100021 ($503.60) through the portal; the invoice page said $303.60 open, but the
invoice email, the reminder, the collector digest, the staff receipts and the statement each worked out "what is
open" for themselves, from the export's balance. Each test drives the real entry points (`/pay`, signed Stripe
events, `/dispute`, `portal send|remind|digest`, the staff dashboard, the build) on SQLite and PostgreSQL through
tests/position_world.World, and reads the output as a person gets it.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from click.testing import CliRunner

from portal.build.pipeline import build
from portal.cli.main import cli
from portal.core.signing import Signer
from portal.export.sample import write_sample
from portal.store.database import Store
from tests.conftest import TEST_SECRET, make_settings
from tests.position_outputs import csv_rows, downloaded_pdfs, table_with, tables
from tests.position_world import World
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import make_app

SECRET = "whsec_balances_0123456789abcdef"


@pytest.fixture(scope="module")
def standin():
    server = StripeStandIn().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, standin):
    with World(request, request.param, standin) as w:
        yield w


def paid_200_of_503_60(world: World) -> str:
    """The issue's payment: $200.00 of INV-100021 ($503.60) by card, confirmed by Stripe."""
    return world.pay(["I1"], "card", {"I1": 20000})


def test_an_invoice_email_after_a_portal_part_payment_asks_for_what_is_left(world):
    paid_200_of_503_60(world)
    text = world.mail_text("send", "--resend")
    assert "Invoice INV-100021" in text and "balance due $303.60 (partly paid)" in text
    assert "balance due $503.60" not in text


def test_an_invoice_email_leaves_out_invoices_paid_or_disputed_in_the_portal_and_totals_what_it_asks(world):
    world.pay(["I3"], "card", {})  # INV-100023 paid in full
    world.dispute("I2")  # INV-100022 disputed in full
    paid_200_of_503_60(world)
    text = world.mail_text("send", "--resend")
    assert "INV-100022" not in text and "INV-100023" not in text
    assert "balance due $303.60" in text and "Total due: $303.60" in text


def test_an_email_that_would_ask_for_nothing_is_not_sent(world):
    for invoice_id in ("I1", "I2", "I3"):
        world.pay([invoice_id], "card", {})
    assert world.mail_text("send", "--resend") == ""
    assert world.mail_text("remind") == ""


def test_a_reminder_after_a_portal_part_payment_asks_for_what_is_left(world):
    paid_200_of_503_60(world)
    text = world.mail_text("remind")
    assert "Invoice INV-100021: $303.60 (partly paid)" in text and "$503.60" not in text


def test_a_reminder_never_mentions_an_invoice_with_a_bank_payment_pending_or_in_dispute(world):
    world.pay(["I1"], "us_bank_account", {})  # processing: pending
    world.dispute("I2", 5000)  # part of INV-100022 in dispute
    text = world.mail_text("remind")
    assert "INV-100021" not in text and "INV-100022" not in text and "Invoice INV-100023: $99.99 (open)" in text


def test_the_digest_does_not_list_an_invoice_paid_in_the_portal_as_unviewed(world):
    world.pay(["I3"], "card", {})
    paid_200_of_503_60(world)
    text = world.mail_text("digest")
    assert "INV-100023" not in text
    assert "invoice INV-100021, $303.60 (partly paid)" in text


def test_staff_receipts_show_what_is_left_not_the_export_balance(world):
    paid_200_of_503_60(world)
    rows = table_with(world.staff.get("/staff/receipts").get_data(as_text=True), "Invoice", "Open")
    [row] = [r for r in rows[1:] if r[rows[0].index("Invoice")].startswith("INV-100021")]
    assert row[rows[0].index("Open")].split("\n")[0] == "$303.60"
    [line] = [r for r in csv_rows(world.staff.get("/staff/receipts.csv").get_data(as_text=True))
              if r["invoice_id"] == "I1"]
    assert (line.get("open"), line.get("status"), line["balance"]) == ("303.60", "partly paid", "503.60")


def _statement(world: World) -> tuple[list[list[str]], str]:
    """(the statement page's table rows, the statement PDF's text)."""
    [folder] = (world.site / "c").iterdir()
    page = (folder / "statement.html").read_text()
    [rows] = [t for t in tables(page) if t and "Description" in t[0]]
    pdfs = downloaded_pdfs(world.client, page)
    return rows, pdfs["Statement of account"]


def test_the_statement_page_and_pdf_show_the_payment_and_what_is_left(world):
    attempt_id = paid_200_of_503_60(world)
    rows, pdf = _statement(world)
    [line] = [r for r in rows if "INV-100021" in r[1] and attempt_id in r[1]]
    assert line[1] == f"Payment {attempt_id} (card), invoice INV-100021" and line[2] == "-$200.00"
    assert f"Payment {attempt_id} (card), invoice INV-100021 -$200.00" in pdf
    # Closing: what the three invoices owe ($303.60 + $1,200.00 + $99.99) less the $25.00 credit note.
    assert rows[-1] == ["Closing balance", "$1,578.59"] and "Closing balance $1,578.59" in pdf


def _money(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    return sign * int(re.sub(r"[^0-9]", "", text))


def test_the_statement_lists_every_invoice_payment_credit_refund_and_reversal_in_order_with_a_running_balance(
        world):
    with_credit = world.pay(["I2"], "card", {}, use_credit=True)
    world.event(with_credit, "refund_part")
    bank = world.pay(["I1"], "us_bank_account", {})
    world.event(bank, "fail")
    card = world.pay(["I3"], "card", {})
    world.event(card, "chargeback")
    world.event(card, "chargeback_won")
    rows, pdf = _statement(world)
    assert rows[0][:2] == ["Date", "Description"] and rows[1][1] == "Opening balance" and rows[1][3] == "$0.00"
    labels = [r[1] for r in rows[2:-1]]
    for expected in ("Invoice INV-100021", "Invoice INV-100022", "Invoice INV-100023", "Credit note CM-5001",
                     f"Payment {with_credit} (card), invoice INV-100022",
                     f"Credit note CM-5001 used for payment {with_credit}",
                     f"Part refund of payment {with_credit}, invoice INV-100022",
                     f"Bank payment {bank} (pending), invoice INV-100021",
                     f"Bank payment {bank} failed: insufficient funds, invoice INV-100021",
                     f"Payment {card} charged back, invoice INV-100023",
                     f"Chargeback of payment {card} reversed, invoice INV-100023"):
        assert labels.count(expected) == 1, (expected, labels)
        assert expected in pdf, expected
    dates = [datetime.strptime(r[0], "%b %d, %Y") for r in rows[2:-1]]
    assert dates == sorted(dates)
    running = 0
    for r in rows[2:-1]:
        running += _money(r[2])
        assert _money(r[3]) == running, r
    m = world.model
    closing = sum(m.open(i) for i in ("I1", "I2", "I3")) - m.available("CR1")
    assert rows[-1] == ["Closing balance", f"${closing // 100:,}.{closing % 100:02d}"] and running == closing
    assert f"Closing balance ${closing // 100:,}.{closing % 100:02d}" in pdf


def test_sample_data_is_exported_as_of_the_moment_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"PORTAL_SECRET_KEY": TEST_SECRET}
    before = datetime.now(UTC).replace(microsecond=0)
    result = CliRunner().invoke(cli, ["sample-data", "export", "--customers", "2", "--invoices", "4"], obj={},
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    as_of = datetime.fromisoformat(json.loads((tmp_path / "export" / "export.json").read_text())["as_of"]
                                   .replace("Z", "+00:00"))
    assert before <= as_of <= datetime.now(UTC) < as_of + timedelta(minutes=1)


def test_a_payment_made_right_after_the_sample_export_shows_on_the_page(db_url, tmp_path, standin):
    """`make demo`: sample data, build, then pay at once. The export's as_of is the moment it was written, so a
    payment a second later is after it and is taken off what the page says is open."""
    settings = make_settings(db_url, stripe_secret_key="sk_test_standin", stripe_webhook_secret=SECRET,
                             stripe_api_base=standin.base, build_dir=str(tmp_path / "build"),
                             target=str(tmp_path / "published"))
    write_sample(tmp_path / "export", customers=1, invoices=2)
    store = Store(settings.database_url)
    try:
        store.migrate()
        build(tmp_path / "export", settings.build_dir, settings, store, workers=1)
        [folder] = (tmp_path / "build" / "c").iterdir()
        account = (folder / "index.html").read_text()
        invoice_id, number = re.search(r'<a href="i/([^"]+)\.html">(INV-\d+)</a>', account).groups()
        before = {r[0]: _money(r[4]) for r in table_with(account, "Invoice", "Open")[1:]}[number]
        with make_app(settings, tmp_path, site_dir=tmp_path / "build") as app:
            client = app.test_client()
            response = client.post("/pay", data={
                "page_token": Signer(settings).page_token("page", "C00001", 1), "invoice": [invoice_id],
                "method": "card", f"amount-{invoice_id}": "1.00"})
            assert response.status_code == 303
            attempt_id = standin.creates()[-1].param("client_reference_id")
            session = standin.session_object(standin.session_for(attempt_id), payment_status="paid")
            payload = json.dumps(standin.event("checkout.session.completed", session))
            signature = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=int(time.time()))
            answer = client.post("/stripe/events", data=payload, headers={"Stripe-Signature": signature})
            assert answer.status_code == 200
            app.extensions["jobs"].wait()
        published = tmp_path / "published" / "c" / folder.name / "index.html"  # the refresh publishes it there
        after = {r[0]: _money(r[4]) for r in table_with(published.read_text(), "Invoice", "Open")[1:]}
        assert after[number] == before - 100
    finally:
        store.close()


def test_a_change_that_moves_an_invoice_waits_for_a_concurrent_change_of_it_then_computes_from_it(world):
    """A refund (Stripe event) and a dispute resolution each wait while another transaction holds the invoice
    (PostgreSQL: its row lock; SQLite: the write lock), then store what follows from what that one committed."""
    import threading

    from sqlalchemy import update

    from portal.balances import stored
    from portal.store.tables import invoices

    attempt_id = world.pay(["I1"], "card", {"I1": 20000})
    world.dispute("I1", 1000)
    for change in (lambda: world.event(attempt_id, "refund_full"), lambda: world._resolve(0)):
        done = threading.Event()
        with world.store.begin() as conn:  # another change of I1, in flight
            conn.execute(update(invoices).where(invoices.c.invoice_id == "I1").values(number=invoices.c.number))
            worker = threading.Thread(target=lambda c=change, d=done: (c(), d.set()))
            worker.start()
            assert not done.wait(1.0)  # it waits for that change to end
        worker.join(30)
        assert done.is_set()
        with world.store.begin() as conn:
            assert stored.stored(conn) == stored.recomputed(conn)
    assert (world.model.open("I1"), world.model.status("I1")) == (50360, "open")
    with world.store.begin() as conn:
        assert stored.stored(conn)["I1"][:3] == ("open", 50360, 0)
