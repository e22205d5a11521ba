"""/dispute and /question: the forms on a customer's static pages.

Like /pay, nothing the browser sends is trusted but the signed page token (and its key version, checked
against the store): invoices, amounts and files are checked in portal.disputes.service, which writes nothing when
it refuses. After the commit, the collector is emailed and the customer's pages are re-rendered (the invoice
shows "in dispute"), both as background jobs (webhook/jobs.py). Attachments are never served back from here:
staff reach them through portal.disputes.attachments.attachment_for_staff.

What a dispute holds cannot be paid online: that is part of what may be paid, decided by
portal.payments.start (the invoice's `due`), which /pay calls after its page-token check.

The dispute form's body (files) is parsed only after its token and its rate limits were checked: the token is
read from the body's first part alone (webhook/formtoken.py).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from portal.core.i18n import N_
from portal.disputes.attachments import MAX_FILE_SIZE, MAX_FILES, Upload
from portal.disputes.errors import DisputeRefused
from portal.disputes.service import Submitted
from portal.disputes.service import submit_dispute as record_dispute
from portal.disputes.service import submit_question as record_question
from webhook.customer.links import page_url
from webhook.formtoken import page_claims
from webhook.jobs import jobs_recorded
from webhook.logs import event
from webhook.security import rate_limited
from webhook.services import client_ip, render, services, translations

log = logging.getLogger(__name__)
bp = Blueprint("disputes", __name__)

# Five files of 10 MB and the form around them; a larger body is cut off before it is read.
MAX_BODY = MAX_FILES * MAX_FILE_SIZE + 1024 * 1024


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request  # this blueprint's requests only
def _allow_uploads() -> None:
    # The app refuses large bodies early (MAX_CONTENT_LENGTH); only the dispute form carries files.
    if request.endpoint == "disputes.dispute":
        request.max_content_length = MAX_BODY


def _customer_from_token(route: str) -> str:
    return page_claims(route).customer_id


def _refused(exc: DisputeRefused, what: str, customer_id: str = "") -> Any:
    event(f"{what}_refused", reason=exc.message, ip=client_ip())
    locale = services().store.customer_locale(customer_id) if customer_id else ""
    t = translations(locale)
    title = t.gettext("This dispute cannot be sent") if what == "dispute" else t.gettext("This question cannot be sent")
    return render("webhook/dispute_refused.html", exc.status, locale=locale, title=title, message=exc.text(t))


def _after(submitted: Submitted, kind: str) -> None:
    """The submission queued the collector's email (and, for a dispute, the re-render): wake what runs them."""
    jobs_recorded(submitted.customer_id)


def _confirm(submitted: Submitted, kind: str) -> Any:
    version = services().store.active_key_version(submitted.customer_id)
    locale = services().store.customer_locale(submitted.customer_id)
    t = translations(locale)
    title = t.gettext("Dispute received") if kind == "dispute" else t.gettext("Question received")
    # The built-in reasons' labels are catalog messages; a configured reason of its own is shown as configured.
    return render("webhook/dispute_received.html", 200, locale=locale, title=title, s=submitted, kind=kind,
                  reason_label=t.gettext(submitted.reason_label) if submitted.reason_label else "",
                  account_url=page_url(submitted.customer_id, version) if version else "")


@bp.post("/dispute")
@rate_limited("dispute", token_arg="page_token")
def dispute() -> Any:
    customer_id = ""
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
        return _refused(DisputeRefused(N_("The files are too large: at most %(max)d files of %(size)d MB each."), 413,
                                       max=MAX_FILES, size=MAX_FILE_SIZE // (1024 * 1024)), "dispute", customer_id)
    except DisputeRefused as exc:
        return _refused(exc, "dispute", customer_id)
    event("dispute_opened", reference=submitted.reference, ip=client_ip())
    _after(submitted, "dispute")
    return _confirm(submitted, "dispute")


@bp.post("/question")
@rate_limited("question", token_arg="page_token")
def question() -> Any:
    customer_id = _customer_from_token("question")
    try:
        submitted = record_question(services().store, customer_id, request.form.get("invoice", ""),
                                    request.form.get("message", ""), email=request.form.get("email", "")[:320])
    except DisputeRefused as exc:
        return _refused(exc, "question", customer_id)
    _after(submitted, "question")
    return _confirm(submitted, "question")
