"""Autopay's emails: the advance notice, a debit that failed (with the next try), a card that needs the customer
(with a link to pay), and the collector's report of a debit that failed for good.

The notice goes to every billing contact on file (never to an address a customer typed), before the debit: the
run records a notice only once the transport accepted it, and debits only what a recorded notice announced.
"""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage

from babel.dates import format_date

from portal.core.config import Settings
from portal.core.links import link_url
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.mail.messages import render_message
from portal.mail.transport import Transport, send_with_retry
from portal.store.database import Store

METHOD_TEXT = {"card": "card", "us_bank_account": "bank account"}


def _day(value: date, locale: str) -> str:
    return format_date(value, "long", locale=locale)


def customer_messages(settings: Settings, store: Store, customer_id: str, template: str, subject: str,
                      invoice_id: str, **context: object) -> list[EmailMessage]:
    """One message per billing contact of the customer, each with its own signed link to the invoice."""
    data = store.customer_data([customer_id])
    if not data:
        return []
    customer = data[0]
    signer = Signer(settings)
    messages = []
    for contact in customer.contacts:
        if contact.role != "billing":
            continue
        url = link_url(settings, signer, customer_id, contact.contact_id, invoice_id, customer.key_version)
        messages.append(render_message(settings, template, (contact.name, contact.email),
                                       f"{subject} · {settings.company_name}", customer_name=customer.customer.name,
                                       url=url, **context))
    return messages


def texts(settings: Settings, store: Store, customer_id: str, amount: int, currency: str, day: date,
          method_kind: str, last4: str) -> dict[str, object]:
    data = store.customer_data([customer_id])
    locale = data[0].customer.locale if data else settings.default_locale
    return {"amount_text": format_money(amount, currency, locale), "day_text": _day(day, locale),
            "method_text": METHOD_TEXT.get(method_kind, method_kind), "last4": last4}


def collector_message(settings: Settings, store: Store, customer_id: str, number: str, amount_text: str,
                      reason: str, tries: int) -> EmailMessage | None:
    data = store.customer_data([customer_id])
    if not data:
        return None
    customer = data[0].customer
    to = customer.collector or settings.ar_inbox or settings.support_email
    return render_message(settings, "autopay_reported", ("", to),
                          f"Autopay failed for good: {customer.name}, invoice {number}",
                          customer_name=customer.name, customer_id=customer_id, number=number,
                          amount_text=amount_text, reason=reason, tries=tries)


def send_all(settings: Settings, transport: Transport, messages: list[EmailMessage]) -> int:
    """Send each; a MailError propagates (the caller records nothing for what did not go)."""
    for message in messages:
        send_with_retry(transport, message, settings.mail_attempts, settings.mail_retry_delay_ms / 1000)
    return len(messages)
