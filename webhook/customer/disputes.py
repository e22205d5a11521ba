"""/dispute and /question: the forms on a customer's static pages.

Like /pay, nothing the browser sends is trusted but the signed page token (and its key version, checked
against the store): invoices, amounts and files are checked in portal.disputes.service, which writes nothing when
it refuses. After the commit, the collector is emailed and the customer's pages are re-rendered (the invoice
shows "in dispute"), both in a background thread. Attachments are never served back from here: staff reach
them through portal.disputes.attachments.attachment_for_staff.

This module also guards /pay: an amount held in an unresolved dispute cannot be paid online (see
`_guard_pay`), so a stale page or a hand-made form cannot pay what the customer disputes. The guard runs
inside /pay after its rate limit and its page-token check (webhook/customer/formtoken.py): a revoked page is answered
the plain 404 before any balance is looked at.

The dispute form's body (files) is parsed only after its token and its rate limits were checked: the token is
read from the body's first part alone (webhook/customer/formtoken.py).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from portal.balances import position
from portal.core.money import AmountError, format_money, parse_amount
from portal.disputes.attachments import MAX_FILE_SIZE, MAX_FILES, Upload
from portal.disputes.errors import DisputeRefused
from portal.disputes.service import Submitted, collector_message
from portal.disputes.service import submit_dispute as record_dispute
from portal.disputes.service import submit_question as record_question
from portal.jobs.republish import Republisher, refresh_customer
from portal.mail.transport import send_with_retry
from portal.store.database import invoices
from portal.store.disputes import disputed_amounts
from webhook.customer.formtoken import page_claims
from webhook.customer.links import page_url
from webhook.logs import event
from webhook.security import rate_limited
from webhook.services import client_ip, render, services

log = logging.getLogger(__name__)
bp = Blueprint("disputes", __name__)

# Five files of 10 MB and the form around them; a larger body is cut off before it is read.
MAX_BODY = MAX_FILES * MAX_FILE_SIZE + 1024 * 1024


def init_app(app: Flask) -> None:
    app.extensions["disputes"] = Republisher()
    app.register_blueprint(bp)
    app.extensions["payments"].guards.append(_guard_pay)


@bp.before_request  # this blueprint's requests only
def _allow_uploads() -> None:
    # The app refuses large bodies early (MAX_CONTENT_LENGTH); only the dispute form carries files.
    if request.endpoint == "disputes.dispute":
        request.max_content_length = MAX_BODY


def _customer_from_token(route: str) -> str:
    return page_claims(route).customer_id


def _refused(exc: DisputeRefused, what: str) -> Any:
    event(f"{what}_refused", reason=exc.message, ip=client_ip())
    title = "This dispute cannot be sent" if what == "dispute" else "This question cannot be sent"
    return render("webhook/dispute_refused.html", exc.status, title=title, message=exc.message)


def _after(submitted: Submitted, kind: str) -> None:
    """Email the collector and re-render the customer's pages, after the commit, off the request."""
    s = services()
    settings, store, mailer = s.settings, s.store, s.mailer
    worker: Republisher = current_app.extensions["disputes"]

    def mail() -> None:
        send_with_retry(mailer, collector_message(settings, submitted, kind), settings.mail_attempts,
                        settings.mail_retry_delay_ms / 1000)

    worker.submit(mail, f"mail {submitted.reference}")
    if kind == "dispute":
        worker.submit(lambda: refresh_customer(settings, store, submitted.customer_id),
                      f"republish {submitted.customer_id}")


def _confirm(submitted: Submitted, kind: str) -> Any:
    version = services().store.active_key_version(submitted.customer_id)
    title = "Dispute received" if kind == "dispute" else "Question received"
    return render("webhook/dispute_received.html", 200, title=title, s=submitted, kind=kind,
                  account_url=page_url(submitted.customer_id, version) if version else "")


@bp.post("/dispute")
@rate_limited("dispute", token_arg="page_token")
def dispute() -> Any:
    try:
        customer_id = _customer_from_token("dispute")
        uploads = [Upload(f.filename or "", f.stream.read(MAX_FILE_SIZE + 1))
                   for f in request.files.getlist("attachment")]
        # Named apart from the pay form's fields: both forms are on the same page.
        invoice_ids = request.form.getlist("dispute_invoice")
        amounts = {i: request.form.get(f"dispute_amount-{i}", "") for i in invoice_ids}
        submitted = record_dispute(services().store, services().settings, customer_id, invoice_ids, amounts,
                                   request.form.get("reason", ""), request.form.get("message", ""), uploads)
    except RequestEntityTooLarge:
        return _refused(DisputeRefused(f"The files are too large: at most {MAX_FILES} files of "
                                       f"{MAX_FILE_SIZE // (1024 * 1024)} MB each.", 413), "dispute")
    except DisputeRefused as exc:
        return _refused(exc, "dispute")
    event("dispute_opened", reference=submitted.reference, ip=client_ip())
    _after(submitted, "dispute")
    return _confirm(submitted, "dispute")


@bp.post("/question")
@rate_limited("question", token_arg="page_token")
def question() -> Any:
    customer_id = _customer_from_token("question")
    try:
        submitted = record_question(services().store, customer_id, request.form.get("invoice", ""),
                                    request.form.get("message", ""))
    except DisputeRefused as exc:
        return _refused(exc, "question")
    _after(submitted, "question")
    return _confirm(submitted, "question")


def _guard_pay(customer_id: str) -> Any:
    """In /pay, for a verified customer at its active key version: refuse paying what an unresolved dispute
    holds. Returns None to let /pay decide the rest."""
    s = services()
    chosen = list(dict.fromkeys(request.form.getlist("invoice")))[:101]
    with s.store.begin() as conn:
        held = disputed_amounts(conn, customer_ids=[customer_id], invoice_ids=chosen)
        if not held:
            return None
        rows = {r.invoice_id: r for r in conn.execute(
            invoices.select().where(invoices.c.customer_id == customer_id,
                                    invoices.c.invoice_id.in_(list(held))))}
        standing = position.of_invoices(conn, list(rows))
    for invoice_id in held:
        row = rows.get(invoice_id)
        if row is None:
            continue
        payable = standing[invoice_id].due
        message = ""
        typed = request.form.get(f"amount-{invoice_id}", "").strip()
        if payable <= 0:
            message = f"Invoice {row.number} is in dispute in full: it can be paid once the dispute is resolved."
        elif not typed:
            message = (f"Part of invoice {row.number} is in dispute: enter an amount of at most "
                       f"{format_money(payable, row.currency, 'en_US')}.")
        else:
            try:
                too_much = parse_amount(typed, row.currency) > payable
            except (AmountError, ValueError):
                too_much = False  # /pay explains a malformed amount itself
            if too_much:
                message = (f"Part of invoice {row.number} is in dispute: at most "
                           f"{format_money(payable, row.currency, 'en_US')} can be paid now.")
        if message:
            event("payment_refused", reason=message, ip=client_ip())
            return render("webhook/pay_status.html", 400, title="This payment cannot be made", message=message,
                          detail="Please go back to the page, reload it, and try again.", reference="",
                          account_url="")
    return None
