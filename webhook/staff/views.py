"""/staff tables and exports: receipts, payments, disputes (with review and resolve), customers and their
timelines, and the cash-application file. Every table is sorted, filtered and paginated by the database
(portal/staff/*_table.py); an export streams the same rows the filtered table shows, every page of them.

Each view parses its query string or form (webhook/staff/blueprint.py), calls one function of portal/staff or
portal/disputes, and renders what it returns; the rules are there, not here.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, request, url_for

from portal.balances import rule
from portal.core.errors import NotFound
from portal.disputes import attachments as dispute_attachments
from portal.disputes import service as dispute_actions
from portal.disputes.errors import DisputeRefused
from portal.disputes.service import OUTCOMES
from portal.staff import customers_table, disputes_table, payments_table, receipts_table
from portal.staff.autopay_status import autopay_summary
from portal.staff.paging import Page
from portal.staff.payments_report import cash_application_csv as cash_application_file
from webhook.jobs import jobs_recorded
from webhook.logs import event, security_log
from webhook.services import services
from webhook.staff import activity as _activity  # noqa: F401 - registers /staff/activity on bp
from webhook.staff import plans as _plans  # noqa: F401 - registers /staff/customer/plan on bp
from webhook.staff.auth import admin_only
from webhook.staff.blueprint import (
    PER_PAGE,
    BadQuery,
    amount_arg,
    bp,
    csv_response,
    currency_arg,
    current_email,
    int_arg,
    page,
    sort_args,
    stamp,
    text_arg,
)
from webhook.staff.causes import root_cause_context
from webhook.staff.collect import customer_context, customers_context


def _paged(call: Any, *args: Any, default_sort: str, default_desc: bool, **kwargs: Any) -> Page:
    sort, descending, number = sort_args(default_sort, default_desc)
    try:
        return call(*args, sort=sort, descending=descending, page=number, per_page=PER_PAGE, **kwargs)
    except ValueError as exc:  # an unknown sort name
        raise BadQuery(str(exc)) from exc


def _sorting(default_sort: str, default_desc: bool) -> tuple[str, bool]:
    sort, descending, _ = sort_args(default_sort, default_desc)
    return sort, descending


# --- receipts ------------------------------------------------------------------------------------------------


def _receipt_filter() -> receipts_table.ReceiptFilter:
    currency = currency_arg()
    amounts_in = currency or services().settings.default_currency
    return receipts_table.ReceiptFilter(
        unopened_days=int_arg("unopened", "Unopened after (days)", 0, 3650),
        min_amount=amount_arg("min", "Minimum open amount", amounts_in),
        max_amount=amount_arg("max", "Maximum open amount", amounts_in),
        group=text_arg("group"), collector=text_arg("collector", 320), customer=text_arg("customer"),
        currency=currency, include_closed=request.args.get("closed") == "1")


@bp.get("/receipts")
def receipts() -> Any:
    store = services().store  # the receipts queries fold new events into the rollup first
    flt = _receipt_filter()
    result = _paged(receipts_table.receipts_page, store, flt, default_sort="due_date", default_desc=False)
    # "N days overdue" is shown only for what may still be asked for (a paid or disputed invoice is not late).
    return page("staff/receipts.html", title="Receipts", result=result, flt=flt, args=request.args,
                askable=rule.ASKABLE)


@bp.get("/receipts.csv")
def receipts_csv() -> Response:
    store = services().store
    flt = _receipt_filter()
    sort, descending = _sorting("due_date", False)
    try:
        chunks = receipts_table.receipts_csv(store, flt, sort, descending)
    except ValueError as exc:
        raise BadQuery(str(exc)) from exc
    return csv_response(chunks, f"receipts-{stamp()}.csv")


# --- payments ------------------------------------------------------------------------------------------------


def _payment_args() -> dict[str, str | None]:
    return {"status": text_arg("status", 20), "method": text_arg("method", 20), "customer": text_arg("customer")}


@bp.get("/payments")
def payments() -> Any:
    result = _paged(payments_table.payments_page, services().store, default_sort="created_at", default_desc=True,
                    **_payment_args())
    return page("staff/payments.html", title="Payments", result=result, args=request.args)


@bp.get("/payments.csv")
def payments_csv() -> Response:
    sort, descending = _sorting("created_at", True)
    try:
        chunks = payments_table.payments_csv(services().store, sort=sort, descending=descending, **_payment_args())
    except ValueError as exc:
        raise BadQuery(str(exc)) from exc
    return csv_response(chunks, f"payments-{stamp()}.csv")


@bp.get("/cash-application.csv")
def cash_application_csv() -> Response:
    return csv_response([cash_application_file(services().store)], f"cash-application-{stamp()}.csv")


# --- disputes ------------------------------------------------------------------------------------------------


def _dispute_args() -> dict[str, str | None]:
    return {"state": text_arg("state", 20), "reason": text_arg("reason", 40), "customer": text_arg("customer")}


@bp.get("/disputes")
def disputes() -> Any:
    result = _paged(disputes_table.disputes_page, services().store, default_sort="created_at", default_desc=False,
                    **_dispute_args())
    return page("staff/disputes.html", title="Disputes", result=result, args=request.args, outcomes=OUTCOMES,
                reasons=services().settings.dispute_reasons, message=_done_message(),
                **root_cause_context(services().store))


def _done_message() -> str:
    """After an action, the dispute's state now (the address only names the dispute: portal/staff/
    disputes_table.py says the words)."""
    dispute_id = int_arg("done", "Dispute", 1, 2**62)
    return "" if dispute_id is None else disputes_table.dispute_state(services().store, dispute_id)


@bp.get("/disputes.csv")
def disputes_csv() -> Response:
    sort, descending = _sorting("created_at", False)
    try:
        chunks = disputes_table.disputes_csv(services().store, sort=sort, descending=descending, **_dispute_args())
    except ValueError as exc:
        raise BadQuery(str(exc)) from exc
    return csv_response(chunks, f"disputes-{stamp()}.csv")


@bp.post("/disputes/<int:dispute_id>/review")
@admin_only
def dispute_review(dispute_id: int) -> Any:
    s = services()
    by = current_email()
    try:
        row = dispute_actions.review(s.store, dispute_id, by)
    except DisputeRefused as exc:
        return page("staff/message.html", 409, title="Not changed", message=exc.message)
    jobs_recorded(row.customer_id)
    event("staff_dispute_reviewed", logger=security_log, by=by, dispute=dispute_actions.reference(row.dispute_id))
    return redirect(url_for("staff.disputes", done=row.dispute_id))


@bp.post("/disputes/<int:dispute_id>/resolve")
@admin_only
def dispute_resolve(dispute_id: int) -> Any:
    s = services()
    outcome = request.form.get("outcome", "")
    note = request.form.get("note", "").strip()
    if not note:
        return page("staff/message.html", 400, title="Not resolved",
                    message="Write a note for the customer: it is emailed with the outcome.")
    by = current_email()
    try:
        row = dispute_actions.resolve(s.store, dispute_id, outcome, note, by)
    except DisputeRefused as exc:
        return page("staff/message.html", 409, title="Not resolved", message=exc.message)
    jobs_recorded(row.customer_id)
    event("staff_dispute_resolved", logger=security_log, by=by, dispute=dispute_actions.reference(row.dispute_id),
          outcome=outcome)
    return redirect(url_for("staff.disputes", done=row.dispute_id))


@bp.get("/disputes/<int:dispute_id>/attachments/<int:n>")
def dispute_attachment(dispute_id: int, n: int) -> Any:
    s = services()
    try:
        found = dispute_attachments.attachment_for_staff(s.store, s.settings, dispute_id, n)
    except NotFound:
        abort(404)
    if isinstance(found, str):  # a presigned S3 address, valid for a few minutes
        return redirect(found)
    response = Response(found, mimetype="application/octet-stream")
    # Never rendered inline: an attachment is whatever a customer uploaded.
    response.headers["Content-Disposition"] = f'attachment; filename="dispute-{dispute_id}-{n}"'
    return response


# --- customers -----------------------------------------------------------------------------------------------


# What each event means, in the words of the receipts (a fetched link is not a reader).
EVENT_LABELS = {
    "email_sent": "Email sent",
    "link_opened": "Link fetched (a person or a mail scanner)",
    "page_viewed": "Viewed by a person",
    "document_viewed": "Document downloaded",
    "dispute_opened": "Dispute opened",
    "dispute_under_review": "Dispute under review",
    "dispute_resolved": "Dispute resolved",
    "question_asked": "Question asked",
    "unsubscribed": "Unsubscribed from reminders",
    "payment_disputed": "Payment charged back (disputed)",
    "payment_reinstated": "Chargeback closed in our favour: the payment counts again",
    "approval_requested": "Sent to the customer's approver",
    "approver_confirmed": "Typed approver address confirmed by staff",
    "invoice_approved": "Approved for payment by the customer's approver",
    "contact_changed": "AP address change confirmed",
    "email_bounced": "Email returned undeliverable",
}


def event_label(kind: str, invoice_id: str) -> str:
    if kind == "page_viewed" and not invoice_id:
        return "Viewed the account or statement page"
    if kind.startswith("payment_") and kind not in EVENT_LABELS:
        status = kind.removeprefix("payment_")
        special = {"processing": "pending (bank payment settling)",
                   "verifying": "waiting for bank account verification"}
        return f"Payment {special.get(status, status.replace('_', ' '))}"
    return EVENT_LABELS.get(kind, kind.replace("_", " "))


@bp.get("/customers")
def customers() -> Any:
    q = text_arg("q")
    found = customers_table.customers_search(services().store, q, limit=50) if q else []
    return page("staff/customers.html", title="Customers", q=q or "", **customers_context(found))


@bp.get("/customer")
def customer() -> Any:
    customer_id = text_arg("id")
    if not customer_id:
        return redirect(url_for("staff.customers"))
    number = int_arg("page", "Page", 1, 100_000) or 1
    invoice_id = text_arg("invoice")
    shown = customers_table.customer_page(services().store, customer_id, page=number, per_page=100,
                                          invoice_id=invoice_id)
    if shown is None:
        abort(404)
    for event_row in shown.timeline.rows:
        event_row["label"] = event_label(event_row["kind"], event_row["invoice_id"])
    autopay = autopay_summary(services().store, customer_id, shown.customer["currency"])
    return page("staff/customer.html", title=shown.customer["name"], customer=shown.customer, result=shown.timeline,
                invoice_id=invoice_id, positions=shown.positions, autopay=autopay, **customer_context(customer_id))


@bp.get("/customer.csv")
def customer_csv() -> Response:
    customer_id = text_arg("id")
    if not customer_id:
        abort(404)
    try:
        chunks = customers_table.timeline_csv(services().store, customer_id, text_arg("invoice"))
    except NotFound:
        abort(404)
    return csv_response(chunks, f"timeline-{stamp()}.csv")
