"""The payment history on the account page, the receipts (page and PDF) of settled payments, and "Paid on".

Real parts: the webhook takes /pay and signed Stripe events (the stand-in plays Stripe), its jobs re-render and
publish the customer to a folder target, and the tests read what was published, as a customer's browser would.
Every amount shown is the store's; a receipt exists only for a settled payment, and its PDF link names the
customer's own payment (another customer's, or a failed one, is refused and records nothing).
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import pypdf
from sqlalchemy import select

from portal.build.pages import invoice_slug
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.payments.history import history
from portal.store.tables import events
from tests.payfixtures import (
    attempt_id_sent,
    intent_event,
    post_pay,
    send_event,
    session_completed,
    settle,
    usd_customer,
)
from tests.webhook_helpers import make_app


def _published(settings, customer_id: str, path: str) -> Path:
    return Path(settings.target) / "c" / Signer(settings).customer_key(customer_id, 1) / path


def _three_payments(client, app, built, store, standin):
    """A settled card payment of the first invoice; on the second a bank payment that failed, then one pending."""
    cid, invoices = usd_customer(store)
    first, second = invoices[:2]
    post_pay(client, built, cid, [first.invoice_id])
    settled = attempt_id_sent(standin)
    assert send_event(client, session_completed(settled, intent="pi_card")).status_code == 200
    post_pay(client, built, cid, [second.invoice_id], "us_bank_account")
    failed = attempt_id_sent(standin)
    send_event(client, session_completed(failed, paid=False, intent="pi_fail"))
    send_event(client, intent_event("payment_intent.processing", failed, intent="pi_fail"))
    send_event(client, intent_event("payment_intent.payment_failed", failed, intent="pi_fail",
                                    code="insufficient_funds"))
    post_pay(client, built, cid, [second.invoice_id], "us_bank_account")
    pending = attempt_id_sent(standin)
    send_event(client, session_completed(pending, paid=False, intent="pi_bank"))
    send_event(client, intent_event("payment_intent.processing", pending, intent="pi_bank"))
    settle(app)
    return cid, first, second, {"settled": settled, "failed": failed, "pending": pending}


def _rows(html: str) -> list[str]:
    section = html[html.index('id="hist-h"'):]
    section = section[:section.index("</section>")]
    return [re.sub(r" ([:,])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip()
            for row in section.split("<tbody>")[1].split("</tr>")[:-1]]


def test_history_lists_every_payment_with_its_allocation_and_state(client, app, built, store, standin):
    cid, first, second, ids = _three_payments(client, app, built, store, standin)
    with store.begin() as conn:
        found = history(conn, [cid])[cid]
    assert [p.attempt_id for p in found] == [ids["pending"], ids["failed"], ids["settled"]]  # newest first
    assert [p.state for p in found] == ["pending", "failed", "settled"]
    assert [(a.number, a.amount) for a in found[2].invoices] == [(first.number, first.balance)]

    rows = _rows(_published(built, cid, "index.html").read_text())
    money = lambda minor: format_money(minor, "USD", "en_US")  # noqa: E731
    assert len(rows) == 3
    assert f"Invoice {second.number}: {money(second.balance)}" in rows[0] and "Pending" in rows[0]
    assert "Failed" in rows[1] and "Receipt" not in rows[1]
    assert f"Invoice {first.number}: {money(first.balance)}" in rows[2] and "Paid" in rows[2]
    assert f"Receipt {ids['settled']}" in rows[2]


def test_only_a_settled_payment_has_a_receipt_page(client, app, built, store, standin):
    cid, first, _second, ids = _three_payments(client, app, built, store, standin)
    receipt = _published(built, cid, f"p/{ids['settled']}.html")
    html = receipt.read_text()
    assert "Payment receipt" in html and f"Invoice {first.number}" in html
    assert html.count(format_money(first.balance, "USD", "en_US")) >= 2  # the line and the total
    assert not _published(built, cid, f"p/{ids['failed']}.html").exists()
    assert not _published(built, cid, f"p/{ids['pending']}.html").exists()
    # The invoice it paid says when.
    page = _published(built, cid, f"i/{invoice_slug(first.invoice_id)}.html").read_text()
    assert re.search(r'badge-paid">Paid on [A-Z][a-z]{2} \d{1,2}, \d{4}<', page)


def test_the_receipt_pdf_is_the_customers_own_and_says_what_was_paid(client, app, built, store, standin, tmp_path):
    cid, first, _second, ids = _three_payments(client, app, built, store, standin)
    html = _published(built, cid, f"p/{ids['settled']}.html").read_text()
    link = re.search(r'href="([^"]+)"[^>]*>Download this receipt', html).group(1)
    with make_app(built, tmp_path / "served", site_dir=Path(built.target)) as served:  # serves what was published
        reader = served.test_client()
        response = reader.get(link[link.index("/d/"):])
        assert response.status_code == 303
        pdf = reader.get(response.headers["Location"])
        body, status, disposition = pdf.get_data(), pdf.status_code, pdf.headers.get("Content-Disposition", "")
        pdf.close()
    assert status == 200
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body), strict=True).pages)
    assert "Payment receipt" in text and ids["settled"] in text and f"Invoice {first.number}" in text
    assert format_money(first.balance, "USD", "en_US") in text
    assert f'Receipt {ids["settled"]}.pdf' in disposition


def test_a_receipt_link_for_another_customers_or_an_unsettled_payment_records_nothing(client, app, built, store,
                                                                                       standin, tmp_path):
    cid, _first, _second, ids = _three_payments(client, app, built, store, standin)
    other = next(d.customer.customer_id for d in store.customer_data() if d.customer.customer_id != cid)
    # The receipt PDF is rendered on its first download (docs/documents.md): the customer downloads it once.
    html = _published(built, cid, f"p/{ids['settled']}.html").read_text()
    link = re.search(r'href="([^"]+)"[^>]*>Download this receipt', html).group(1)
    with make_app(built, tmp_path / "first", site_dir=Path(built.target)) as served:
        assert served.test_client().get(link[link.index("/d/"):]).status_code == 303
    name = _receipt_pdf_name(built, cid)
    signer = Signer(built)
    # The file exists in the other customer's folder too, so only the ownership check can refuse the link.
    other_docs = Path(built.target) / "docs" / signer.customer_key(other, 1)
    other_docs.mkdir(parents=True, exist_ok=True)
    (other_docs / name).write_bytes((Path(built.target) / "docs" / signer.customer_key(cid, 1) / name).read_bytes())
    with store.begin() as conn:
        before = len(conn.execute(select(events.c.event_id)).all())
    own = signer.doc_token(cid, 1, f"receipt:{ids['settled']}", "", name)
    forged = [signer.doc_token(other, 1, f"receipt:{ids['settled']}", "", name),
              signer.doc_token(cid, 1, f"receipt:{ids['failed']}", "", name),
              signer.doc_token(cid, 1, f"receipt:{ids['pending']}", "", name),
              signer.doc_token(cid, 1, "receipt:pa_000000000000000000000000", "", name)]
    with make_app(built, tmp_path / "served", site_dir=Path(built.target)) as served:
        reader = served.test_client()
        for token in forged:
            assert reader.get(f"/d/{token}").status_code == 404
        with store.begin() as conn:
            assert len(conn.execute(select(events.c.event_id)).all()) == before
        assert reader.get(f"/d/{own}").status_code == 303  # the same file, the customer's own settled payment


def test_an_invoice_the_export_then_closed_stays_paid_recently_for_90_days(client, app, built, store, standin,
                                                                            export_dir):
    """Paid in the portal, then dropped by the next export (the ERP closed it): the account page keeps it under "Paid
    recently", with "Paid on DATE" and its receipt, while the export's as_of is at most RECENT_DAYS (90) after the
    payment settled; from the next day on it is gone. An invoice the export still lists is not in that list."""
    from dataclasses import replace

    from babel.dates import format_date

    from portal.build.customer import render_customer
    from portal.build.pages import PageRenderer
    from portal.export.reader import read_export

    cid, invoices = usd_customer(store)
    paid, still_open = invoices[0], invoices[1]
    post_pay(client, built, cid, [paid.invoice_id])
    attempt = attempt_id_sent(standin)
    assert send_event(client, session_completed(attempt, intent="pi_card")).status_code == 200
    settle(app)
    with store.begin() as conn:
        [payment] = history(conn, [cid])[cid]
    assert payment.settled_at is not None
    ledger = read_export(export_dir, built)
    closed = {k: v for k, v in ledger.invoices.items() if k != paid.invoice_id}

    def account_page_at(days_after_payment: int) -> tuple[str, set[str]]:
        store.import_snapshot(replace(ledger, invoices=closed, lines={k: v for k, v in ledger.lines.items()
                                                                     if k != paid.invoice_id},
                                      documents={k: d for k, d in ledger.documents.items()
                                                 if d.invoice_id != paid.invoice_id},
                                      as_of=payment.settled_at + timedelta(days=days_after_payment)))
        outputs = {o.path.split("/", 2)[2]: o for o in render_customer(PageRenderer(built), store, cid).outputs
                   if o.path.startswith("c/")}
        return outputs["index.html"].data.decode(), set(outputs)

    def recent_rows(html: str) -> list[str]:
        if 'id="recent-h"' not in html:
            return []
        section = html[html.index('id="recent-h"'):]
        return section[:section.index("</section>")].split("<tbody>")[1].split("</tr>")[:-1]

    paid_on = f"Paid on {format_date(payment.settled_at.date(), 'medium', locale='en_US')}"
    for days in (1, 90):
        html, paths = account_page_at(days)
        assert f"i/{invoice_slug(paid.invoice_id)}.html" not in paths  # closed: no page of its own any more
        [row] = recent_rows(html)
        assert f">{paid.number}</th>" in row and paid_on in row
        assert format_money(paid.balance, "USD", "en_US") in row and f'href="p/{attempt}.html"' in row
        assert f"p/{attempt}.html" in paths  # the receipt it links is there
        assert still_open.number not in "".join(recent_rows(html))
    html, _paths = account_page_at(91)
    assert recent_rows(html) == [] and paid_on not in html


def _receipt_pdf_name(settings, customer_id: str) -> str:
    """The receipt PDF's file name on the target (there is one receipt in these tests): a real file, so a refusal
    below is about whose payment it is, not a missing file."""
    key = Signer(settings).customer_key(customer_id, 1)
    receipts = [p.name for p in (Path(settings.target) / "docs" / key).glob("*.pdf")
                if (pypdf.PdfReader(io.BytesIO(p.read_bytes())).metadata.title or "").startswith("Payment receipt")]
    assert len(receipts) == 1
    return receipts[0]
