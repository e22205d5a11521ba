"""The emails to the payer when an attempt moves: pending, received, failed, verify your bank account.

Honest by construction: a bank payment on its way gets the pending notice, never a receipt; the receipt is
sent only for `succeeded` (the money is there). Each message says where the invoices paid stand now.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.message import EmailMessage
from typing import TYPE_CHECKING

from portal.core.config import Settings
from portal.core.i18n import N_, translations_for
from portal.core.money import format_money
from portal.mail.messages import render_message
from portal.payments.pricing import METHODS
from portal.payments.state import customer_reason

if TYPE_CHECKING:
    from portal.payments.events import Change


MESSAGES = {
    "verifying": ("payment_verify", N_("Please verify your bank account to finish your payment · %(company)s")),
    "processing": ("payment_pending", N_("Your bank payment is on its way · %(company)s")),
    "succeeded": ("payment_received", N_("Payment received, thank you · %(company)s")),
    "failed": ("payment_failed", N_("Your payment did not go through · %(company)s")),
}


def payment_message(settings: Settings, change: Change, to: tuple[str, str], customer_name: str,
                    account_url: str, standing: Iterable[str] = (), locale: str = "") -> EmailMessage | None:
    """The email for a state change: a pending notice for ACH, the receipt only when the money is there,
    a failure notice; for a bank account that waits for its microdeposits, the link to verify them. None for
    changes the payer is not mailed about (expiry, refunds, disputes). `standing`: where the invoices paid stand
    now (portal.balances.position.standing). `locale`: the customer's (its language and formats; "": the
    configured default)."""
    if change.new not in MESSAGES:
        return None
    if change.new == "failed" and change.attempt_id.startswith("ap_"):
        return None  # autopay's own debits: `portal autopay` mails the failure with its next try (autopay_run.py)
    template, subject = MESSAGES[change.new]
    locale = locale or settings.default_locale
    t = translations_for(locale, settings.default_locale)
    method = METHODS.get(change.method)
    return render_message(settings, template, to, t.gettext(subject) % {"company": settings.company_name},
                          locale=locale, customer_name=customer_name,
                          amount_text=format_money(change.amount, change.currency, locale),
                          numbers=list(change.numbers), method_text=t.gettext(method) if method else change.method,
                          reason=t.gettext(customer_reason(stored=change.failure_reason)) if change.failure_reason
                          else "", attempt_id=change.attempt_id, account_url=account_url,
                          was_bank=change.method == "us_bank_account", verify_url=change.verify_url,
                          standing=list(standing))
