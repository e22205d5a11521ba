"""/staff payment plans on a customer (docs/collect.md, "Payment plans"): preview the split, save it (with the
amounts as the collector edited them), cancel it.

Every POST passes the blueprint's CSRF check (webhook/staff/auth.py) and the role check here (collectors,
managers, admins: `worker_only`); portal/collect/plans.py checks the role again, and every amount, invoice and
the customer against the store. Each view parses the form, calls one function and renders or redirects.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for

from portal.collect.access import CollectRefused
from portal.collect.plans import FREQUENCY_TEXT, Proposal, cancel_plan, make_plan, preview
from webhook.jobs import jobs_recorded
from webhook.logs import event, security_log
from webhook.services import services
from webhook.staff.blueprint import bp, page
from webhook.staff.collect import actor, worker_only


def _proposal() -> Proposal:
    form = request.form
    return Proposal(form.get("invoice", "")[:200], form.get("frequency", "")[:20], form.get("start", "")[:40],
                    form.get("count", "")[:20], tuple(a[:40] for a in form.getlist("amount")[:100]))


def _not_recorded(exc: CollectRefused) -> Any:
    return page("staff/message.html", exc.status, title="Plan not recorded", message=exc.message)


@bp.post("/customer/plan")
@worker_only
def customer_plan() -> Any:
    """"Preview" shows the even split (or the amounts typed) to edit; "Save" records the plan."""
    customer_id = request.form.get("customer_id", "")[:200]
    proposal = _proposal()
    try:
        if request.form.get("action") != "save":
            draft = preview(services().store, actor(), customer_id, proposal)
            return page("staff/plan_preview.html", title="Payment plan", customer_id=customer_id, draft=draft,
                        frequency_text=FREQUENCY_TEXT, proposal=proposal)
        plan_id = make_plan(services().store, actor(), customer_id, proposal)
    except CollectRefused as exc:
        return _not_recorded(exc)
    jobs_recorded(customer_id)  # the plan's transaction queued a refresh of the customer's pages
    event("staff_plan_made", logger=security_log, by=actor().email, customer=customer_id, plan=plan_id)
    return redirect(url_for("staff.customer", id=customer_id, _anchor="plans"))


@bp.post("/customer/plan/cancel")
@worker_only
def customer_plan_cancel() -> Any:
    customer_id = request.form.get("customer_id", "")[:200]
    try:
        plan_id = int(request.form.get("plan_id", "")[:12])
    except ValueError:
        return page("staff/message.html", 400, title="Plan not cancelled", message="No such plan")
    try:
        cancel_plan(services().store, actor(), customer_id, plan_id)
    except CollectRefused as exc:
        return _not_recorded(exc)
    jobs_recorded(customer_id)
    event("staff_plan_cancelled", logger=security_log, by=actor().email, customer=customer_id, plan=plan_id)
    return redirect(url_for("staff.customer", id=customer_id, _anchor="plans"))
