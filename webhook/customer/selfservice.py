"""/contacts and /approval: the self-service forms of a customer's pages, and the links they mail.

As everywhere, nothing the browser sends is trusted but the signed page token (its customer, at the current key
version) or the emailed action token; the domain (portal/selfservice) checks every invoice and contact against
that customer and writes nothing when it refuses. Link targets answer GET with a page and act only on POST, so a
mail scanner that fetches a link confirms or approves nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request

from portal.core.signing import TokenInvalid
from portal.selfservice import approvals, contacts
from portal.selfservice.common import SelfServiceRefused
from webhook.customer.forms import CustomerForm, customer_form
from webhook.customer.links import page_url
from webhook.errors import TokenRejected
from webhook.jobs import jobs_recorded
from webhook.logs import event
from webhook.security import rate_limited
from webhook.services import client_ip, render, services

bp = Blueprint("selfservice", __name__)
PAGE = "webhook/selfservice.html"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _account(customer_id: str) -> str:
    version = services().store.active_key_version(customer_id)
    return page_url(customer_id, version) if version else ""


def _page(customer_id: str, status: int, **context: Any) -> Any:
    """The answer page of an emailed link in the customer's language (customers.csv locale), as the forms' answers."""
    return render(PAGE, status, locale=services().store.customer_locale(customer_id), **context)


def _refused(form: CustomerForm, exc: SelfServiceRefused, route: str) -> Any:
    return form.refused(exc, f"{route}_refused", PAGE, exc.status, what="refused")


@bp.post("/contacts")
@rate_limited("contacts", token_arg="page_token")
def contact_change() -> Any:
    form = customer_form("contacts")
    fields = request.form
    try:
        change = contacts.request_change(services().store, form.customer_id, fields.get("kind", ""),
                                         fields.get("replaces", ""), fields.get("email", ""), fields.get("name", ""))
    except SelfServiceRefused as exc:
        return _refused(form, exc, "contacts")
    jobs_recorded(form.customer_id)
    event("contact_change_requested", customer=form.customer_id, ip=client_ip())
    return form.answer(PAGE, 200, what="contact_requested", email=change.email, account_url=_account(form.customer_id))


def _change(token: str) -> Any:
    s = services()
    try:
        return contacts.change_for_token(s.store, s.signer, token)
    except TokenInvalid as exc:
        raise TokenRejected("contact-confirm", token, str(exc)) from None


@bp.get("/contacts/confirm/<token>")
@rate_limited("contact-confirm")
def contact_confirm_page(token: str) -> Any:
    change = _change(token)
    return _page(change.customer_id, 200, what="contact_confirm", email=change.email,
                 done=change.status != "requested")


@bp.post("/contacts/confirm/<token>")
@rate_limited("contact-confirm")
def contact_confirm(token: str) -> Any:
    s = services()
    try:
        change = contacts.confirm_change(s.store, s.signer, token)
    except TokenInvalid as exc:
        raise TokenRejected("contact-confirm", token, str(exc)) from None
    jobs_recorded(change.customer_id)
    return _page(change.customer_id, 200, what="contact_confirmed", email=change.email)


@bp.post("/approval")
@rate_limited("approval", token_arg="page_token")
def approval_request() -> Any:
    form = customer_form("approval")
    fields = request.form
    invoice_id = fields.get("invoice", "")
    store = services().store
    try:
        sent = approvals.request_approval(store, form.customer_id, invoice_id, fields.get("approver", ""),
                                          fields.get("approver_email", ""))
    except SelfServiceRefused as exc:
        return _refused(form, exc, "approval")
    jobs_recorded(form.customer_id)
    version = store.active_key_version(form.customer_id)
    _version, invoice = store.access(form.customer_id, invoice_id)
    return form.answer(PAGE, 200, what="approval_waiting" if sent.typed else "approval_sent", email=sent.email,
                       number=invoice.number if invoice else "",
                       account_url=page_url(form.customer_id, version, invoice_id) if version else "")


def _approval(token: str) -> Any:
    s = services()
    try:
        return approvals.approval_view(s.store, s.signer, token)
    except TokenInvalid as exc:
        raise TokenRejected("approve", token, str(exc)) from None


@bp.get("/approve/<token>")
@rate_limited("approve")
def approve_page(token: str) -> Any:
    view = _approval(token)
    found = view.request
    version = services().store.active_key_version(found.customer_id)
    return _page(found.customer_id, 200, what="approve", number=view.number, customer_name=view.customer_name,
                 open_text=view.open_text, amount_text=view.amount_text, due_text=view.due_text,
                 invoice_url=page_url(found.customer_id, version, found.invoice_id) if version else "",
                 approved_text=view.approved_text, approved_by=view.approved_by, done=found.approved_at is not None)


@bp.post("/approve/<token>")
@rate_limited("approve")
def approve(token: str) -> Any:
    _approval(token)  # a closed invoice is refused before anything is recorded
    s = services()
    try:
        done = approvals.approve(s.store, s.signer, token)
    except TokenInvalid as exc:
        raise TokenRejected("approve", token, str(exc)) from None
    jobs_recorded(done.customer_id)
    event("invoice_approved", customer=done.customer_id, ip=client_ip())
    view = _approval(token)  # as it is now: the invoice's first approval (another approver may have been quicker)
    return _page(done.customer_id, 200, what="approved", number=view.number, approved_text=view.approved_text,
                 approved_by=view.approved_by)
