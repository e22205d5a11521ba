"""/promise: "I will pay X by DATE", the form on a customer's account page (templates/pages/_promise.html).

As with /dispute, nothing the browser sends is trusted but the signed page token (checked with its key version
against the store, webhook/formtoken.py): the invoices, the amount and the day are checked by
portal.collect.promises.promise_from_customer against the store and the team's limits, which writes nothing
when it refuses. The collector sees the promise on the customer's timeline, and reminders pause for its invoices.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from babel.dates import format_date
from flask import Blueprint, request

from portal.collect.access import CollectRefused
from portal.collect.promises import Offer, promise_from_customer
from webhook.customer.forms import customer_form
from webhook.customer.links import page_url
from webhook.logs import event
from webhook.security import rate_limited
from webhook.services import client_ip, services

bp = Blueprint("promises", __name__)


@bp.post("/promise")
@rate_limited("promise", token_arg="page_token")
def promise() -> Any:
    form = customer_form("promise")  # answers in the customer's language, as the dispute form's do
    s = services()
    offer = Offer(tuple(i[:200] for i in request.form.getlist("promise_invoice")[:200]),
                  request.form.get("promise_amount", "")[:40], request.form.get("promise_date", "")[:40])
    try:
        promise_id = promise_from_customer(s.store, s.settings, form.customer_id, offer)
    except CollectRefused as exc:
        return form.refused(exc, "promise_refused", "webhook/promise_refused.html", 400 if exc.status != 404 else 404)
    event("promise_made", promise=promise_id, ip=client_ip())
    version = s.store.active_key_version(form.customer_id)
    day = date.fromisoformat(offer.day.strip())
    return form.answer("webhook/promise_received.html", 200, day=day,
                       day_text=format_date(day, "long", locale=form.locale or s.settings.default_locale),
                       amount=offer.amount.strip(),
                       account_url=page_url(form.customer_id, version) if version else "")
