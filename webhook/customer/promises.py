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
from webhook.customer.links import page_url
from webhook.formtoken import page_claims
from webhook.logs import event
from webhook.security import rate_limited
from webhook.services import client_ip, render, services, translations

bp = Blueprint("promises", __name__)


@bp.post("/promise")
@rate_limited("promise", token_arg="page_token")
def promise() -> Any:
    customer_id = page_claims("promise").customer_id
    s = services()
    offer = Offer(tuple(i[:200] for i in request.form.getlist("promise_invoice")[:200]),
                  request.form.get("promise_amount", "")[:40], request.form.get("promise_date", "")[:40])
    # The answer is in the customer's language (customers.csv locale), as the dispute form's is.
    locale = s.store.customer_locale(customer_id)
    t = translations(locale)
    try:
        promise_id = promise_from_customer(s.store, s.settings, customer_id, offer)
    except CollectRefused as exc:
        event("promise_refused", reason=exc.message, ip=client_ip())
        return render("webhook/promise_refused.html", 400 if exc.status != 404 else 404, locale=locale,
                      message=exc.text(t))
    event("promise_made", promise=promise_id, ip=client_ip())
    version = s.store.active_key_version(customer_id)
    day = date.fromisoformat(offer.day.strip())
    return render("webhook/promise_received.html", 200, locale=locale, day=day,
                  day_text=format_date(day, "long", locale=locale or s.settings.default_locale),
                  amount=offer.amount.strip(), account_url=page_url(customer_id, version) if version else "")
