"""/staff/approvals: typed approver addresses waiting for the collector's check (portal/selfservice/approvals.py).

Confirming mails the approver the invoice link; refusing means the address never receives anything. Both are
admin actions behind the staff session's CSRF check (webhook/staff/auth.py), like the dispute actions.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, url_for

from portal.core.errors import NotFound
from portal.selfservice import approvals
from webhook.jobs import jobs_recorded
from webhook.logs import event, security_log
from webhook.services import services
from webhook.staff.auth import admin_only
from webhook.staff.blueprint import bp, current_email, page


@bp.get("/approvals")
def approval_checks() -> Any:
    waiting = approvals.awaiting(services().store)
    return page("staff/approvals.html", title="Approver addresses to check", waiting=waiting)


@bp.post("/approvals/<request_id>/confirm")
@admin_only
def approval_confirm(request_id: str) -> Any:
    by = current_email()
    try:
        found = approvals.confirm_typed(services().store, request_id, by)
    except NotFound as exc:
        return page("staff/message.html", 409, title="Not changed", message=exc.message)
    jobs_recorded(found.customer_id)
    event("staff_approver_confirmed", logger=security_log, by=by, request=request_id)
    return redirect(url_for("staff.approval_checks"))


@bp.post("/approvals/<request_id>/refuse")
@admin_only
def approval_refuse(request_id: str) -> Any:
    by = current_email()
    try:
        approvals.refuse_typed(services().store, request_id, by)
    except NotFound as exc:
        return page("staff/message.html", 409, title="Not changed", message=exc.message)
    event("staff_approver_refused", logger=security_log, by=by, request=request_id)
    return redirect(url_for("staff.approval_checks"))
