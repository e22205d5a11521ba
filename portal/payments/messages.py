"""The emails to the payer when an attempt moves: pending, received, failed, verify your bank account.

Honest by construction: a bank payment on its way gets the pending notice, never a receipt; the receipt is
sent only for `succeeded` (the money is there). Each message says where the invoices paid stand now.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.message import EmailMessage
from typing import TYPE_CHECKING

from portal.core.config import Settings
from portal.core.money import format_money
from portal.mail.messages import render_message
from portal.payments.pricing import METHODS

if TYPE_CHECKING:
    from portal.payments.events import Change


MESSAGES = {
    "verifying": ("payment_verify", "Please verify your bank account to finish your payment"),
    "processing": ("payment_pending", "Your bank payment is on its way"),
    "succeeded": ("payment_received", "Payment received, thank you"),
    "failed": ("payment_failed", "Your payment did not go through"),
}


def payment_message(settings: Settings, change: Change, to: tuple[str, str], customer_name: str,
                    account_url: str, standing: Iterable[str] = ()) -> EmailMessage | None:
    """The email for a state change: a pending notice for ACH, the receipt only when the money is there,
    a failure notice; for a bank account that waits for its microdeposits, the link to verify them. None for
    changes the payer is not mailed about (expiry, refunds, disputes). `standing`: where the invoices paid stand
    now (portal.balances.position.standing)."""
    if change.new not in MESSAGES:
        return None
    if change.new == "failed" and change.attempt_id.startswith("ap_"):
        return None  # autopay's own debits: `portal autopay` mails the failure with its next try (autopay_run.py)
    template, subject = MESSAGES[change.new]
    return render_message(settings, template, to, f"{subject} · {settings.company_name}",
                          customer_name=customer_name, amount_text=format_money(change.amount, change.currency,
                                                                                settings.default_locale),
                          numbers=list(change.numbers), method_text=METHODS.get(change.method, change.method),
                          reason=change.failure_reason, attempt_id=change.attempt_id, account_url=account_url,
                          was_bank=change.method == "us_bank_account", verify_url=change.verify_url,
                          standing=list(standing))
