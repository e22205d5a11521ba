"""/staff workbench actions on a customer: log a touch (call, outside email, note) with the promise to pay it
brought, place or release a hold; and
what the customer page and the customers list show of the workbench (docs/collect.md).

Every POST passes the blueprint's CSRF check (webhook/staff/auth.py) and the role check here (`worker_only`);
the domain functions check the role again. Each view parses the form, calls one function of portal/collect and
redirects back to the customer page, whose touches section shows the result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import abort, redirect, request, url_for

from portal.collect.access import Actor, CollectRefused
from portal.collect.answers import answer_question
from portal.collect.customer import customer_workbench
from portal.collect.holds import place_hold, release_hold
from portal.collect.portfolio import portfolio, with_holds
from portal.collect.promises import Offer, log_touch_with_promise
from portal.collect.touches import KINDS, OUTCOMES, log_touch
from portal.collect.worklist import REASONS, build_worklist, reassign, snooze
from portal.staff.autopay_status import with_autopay
from webhook.logs import event, security_log
from webhook.services import client_ip, services
from webhook.staff.auth import current_session
from webhook.staff.blueprint import MAX_PAGE, bp, int_arg, page


def actor() -> Actor:
    session = current_session()
    if session is None:  # require_staff ran first; never reached
        abort(403)
    return Actor(session.user.email, session.user.role)


def worker_only(view: Callable) -> Callable:
    """Collectors, managers and admins; a viewer reads only."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        who = actor()
        if not who.works_customers:
            event("staff_forbidden", logger=security_log, ip=client_ip(), endpoint=request.endpoint or "",
                  user=who.email)
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def customer_context(customer_id: str) -> dict[str, Any]:
    """What the customer page's workbench sections need (templates/staff/_touches.html)."""
    s = services()
    return {**customer_workbench(s.store, s.settings, actor(), customer_id), "touch_kinds": KINDS,
            "call_outcomes": OUTCOMES}


def customers_context(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The customers page: search results and a portfolio (a collector's own by default; `?collector=` names
    another's, or `all` for none), each customer with its hold and autopay enrolment."""
    s = services()
    who = actor()
    wanted = request.args.get("collector", "").strip()[:320]
    if not wanted and who.role == "collector":
        wanted = who.email
    listed = portfolio(s.store, wanted) if wanted and wanted != "all" else []
    return {"found": with_autopay(s.store, with_holds(s.store, found)), "portfolio": with_autopay(s.store, listed),
            "portfolio_of": "" if wanted == "all" else wanted}


def _back(customer_id: str, anchor: str = "workbench") -> Any:
    return redirect(url_for("staff.customer", id=customer_id, _anchor=anchor))


def _refused(exc: CollectRefused) -> Any:
    return page("staff/message.html", exc.status, title="Not recorded", message=exc.message)


@bp.post("/customer/touch")
@worker_only
def customer_touch() -> Any:
    form = request.form
    customer_id = form.get("customer_id", "")[:200]
    invoice_ids = [i[:200] for i in form.getlist("invoice")]
    amount, day = form.get("promise_amount", "").strip(), form.get("promise_date", "").strip()
    try:
        if amount or day:  # the call brought a promise to pay: both are recorded, or neither
            log_touch_with_promise(services().store, actor(), customer_id, form.get("kind", ""),
                                   Offer(tuple(invoice_ids), amount, day), outcome=form.get("outcome", ""),
                                   body=form.get("body", ""))
        else:
            log_touch(services().store, actor(), customer_id, form.get("kind", ""), outcome=form.get("outcome", ""),
                      body=form.get("body", ""), invoice_ids=invoice_ids)
    except CollectRefused as exc:
        return _refused(exc)
    return _back(customer_id)


@bp.post("/customer/hold")
@worker_only
def customer_hold() -> Any:
    form = request.form
    customer_id = form.get("customer_id", "")[:200]
    raw = form.get("until", "").strip()
    try:
        until = date.fromisoformat(raw)
    except ValueError:
        return page("staff/message.html", 400, title="Not recorded",
                    message=f'Last day of the hold: "{raw[:40]}" is not a date (YYYY-MM-DD)')
    try:
        place_hold(services().store, actor(), customer_id, form.get("reason", ""), until)
    except CollectRefused as exc:
        return _refused(exc)
    event("staff_hold_placed", logger=security_log, by=actor().email, customer=customer_id)
    return _back(customer_id)


@bp.post("/customer/hold/release")
@worker_only
def customer_hold_release() -> Any:
    customer_id = request.form.get("customer_id", "")[:200]
    try:
        release_hold(services().store, actor(), customer_id)
    except CollectRefused as exc:
        return _refused(exc)
    return _back(customer_id)


@bp.post("/questions/<int:question_id>/answer")
@worker_only
def question_answer(question_id: int) -> Any:
    s = services()
    customer_id = request.form.get("customer_id", "")[:200]
    try:
        sent_to = answer_question(s.store, s.settings, actor(), question_id, request.form.get("answer", ""))
    except CollectRefused as exc:
        return _refused(exc)
    event("staff_question_answered", logger=security_log, by=actor().email, question=f"Q-{question_id}",
          recipients=len(sent_to))
    return redirect(url_for("staff.customer", id=customer_id, _anchor="questions")) if customer_id else \
        redirect(url_for("staff.customers"))


# --- today's worklist ------------------------------------------------------------------------------------------


@bp.get("/worklist")
def worklist() -> Any:
    """A collector's own list by default; managers and admins the team's, or one collector's with ?collector=."""
    s = services()
    who = actor()
    wanted = request.args.get("collector", "").strip().lower()[:320]
    if not wanted:
        wanted = "" if who.oversees or not who.works_customers else who.email
    number = int_arg("page", "Page", 1, MAX_PAGE) or 1
    shown = build_worklist(s.store, s.settings, "" if wanted == "all" else wanted, page=number)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return page("staff/worklist.html", title="Today's worklist", wl=shown, wanted=wanted, can_work=who.works_customers,
                can_assign=who.oversees, tomorrow=tomorrow.isoformat(), reasons=REASONS)


def _back_to_list() -> Any:
    return redirect(request.form.get("back", "") if request.form.get("back", "").startswith("/staff/worklist")
                    and "//" not in request.form.get("back", "") else url_for("staff.worklist"))


@bp.post("/worklist/snooze")
@worker_only
def worklist_snooze() -> Any:
    form = request.form
    raw = form.get("until", "").strip()
    try:
        until = date.fromisoformat(raw)
    except ValueError:
        return page("staff/message.html", 400, title="Not snoozed",
                    message=f'Snooze until: "{raw[:40]}" is not a date (YYYY-MM-DD)')
    try:
        snooze(services().store, actor(), form.get("customer_id", "")[:200], form.get("reason", "")[:30], until)
    except CollectRefused as exc:
        return _refused(exc)
    return _back_to_list()


@bp.post("/customer/assign")
def customer_assign() -> Any:
    who = actor()
    customer_id = request.form.get("customer_id", "")[:200]
    if not who.oversees:
        event("staff_forbidden", logger=security_log, ip=client_ip(), endpoint=request.endpoint or "", user=who.email)
        abort(403)
    try:
        reassign(services().store, who, customer_id, request.form.get("collector", ""))
    except CollectRefused as exc:
        return _refused(exc)
    event("staff_customer_reassigned", logger=security_log, by=who.email, customer=customer_id)
    return _back_to_list()
