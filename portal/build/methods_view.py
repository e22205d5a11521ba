"""The account page's "Payment methods and autopay" section (templates/pages/_methods.html), as data.

Everything here comes from the store (portal/store/autopay.py) through the build: the page shows a method only
after Stripe's signed events saved it, and every form carries the page's signed token, which binds the customer.
A bank account can pay US-dollar invoices only (ACH), so it is offered to customers billed in USD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal.core.config import Settings
from portal.core.money import digits


def methods_view(settings: Settings, customer: Any, page_token: str, state: tuple | None,
                 money: Callable[[int, str], str]) -> dict[str, Any]:
    methods, choice = state or ([], None)
    webhook = settings.effective_webhook_url
    active = choice is not None and choice.enabled
    cap_text = _plain(choice.cap, customer.currency) if choice is not None and choice.cap is not None else ""
    return {
        "enabled": settings.payments_enabled,
        "page_token": page_token,
        "setup_action": f"{webhook}/methods/setup",
        "remove_action": f"{webhook}/methods/remove",
        "autopay_action": f"{webhook}/autopay",
        "bank_allowed": customer.currency == "USD",
        "company": settings.company_name,
        "notice_days": settings.autopay_notice_days,
        # Stripe's card brands are lower-case codes ("visa", "amex"); a bank's name is shown as the bank writes it.
        "methods": [{"id": m.method_id, "kind": m.kind, "label": m.label.title() if m.kind == "card" else m.label,
                     "last4": m.last4, "ready": m.ready, "autopay": active and choice.method_id == m.method_id}
                    for m in methods],
        "autopay": {"on": active, "method_id": choice.method_id if choice else "",
                    "timing": "before" if choice and choice.days_before else "due",
                    "days": choice.days_before if choice and choice.days_before else "",
                    "cap_text": cap_text, "cap_display": money(choice.cap, customer.currency)
                    if choice is not None and choice.cap is not None else "",
                    "stopped": choice.stopped_reason if choice is not None and not choice.enabled else ""},
    }


def _plain(minor: int, currency: str) -> str:
    """An amount as the form's field takes it back (1234.50): no grouping, no symbol."""
    places = digits(currency)
    if places == 0:
        return str(minor)
    return f"{minor // 10 ** places}.{minor % 10 ** places:0{places}d}"
