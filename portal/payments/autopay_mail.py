"""Autopay's emails: the advance notice, a debit that failed (with the next try), a card that needs the customer
(with a link to pay), and the collector's report of a debit that failed for good.

The notice goes to every billing contact on file (never to an address a customer typed), before the debit: the
run records a notice only once the transport accepted it, and debits only what a recorded notice announced.

The customer's emails are in the customer's language (customers.csv `locale`, docs/translations.md): subject, body,
the method's name and the failure's reason. The collector's report stays English, as the staff's emails do.
"""

from __future__ import annotations

from datetime import date
from email.message import EmailMessage

from babel.dates import format_date

from portal.core.config import Settings
from portal.core.i18n import N_, translations_for
from portal.core.links import link_url
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.mail.messages import render_message
from portal.mail.transport import Transport, send_with_retry
from portal.payments.state import customer_reason
from portal.store.database import CustomerData, Store

# In English; said in the customer's language where they are shown (portal/core/i18n.py).
METHOD_TEXT = {"card": N_("card"), "us_bank_account": N_("bank account")}
SUBJECTS = {
    "autopay_notice": N_("Automatic payment of invoice %(number)s on %(day)s · %(company)s"),
    "autopay_action": N_("Please confirm the payment of invoice %(number)s · %(company)s"),
    "autopay_failed": N_("Automatic payment of invoice %(number)s did not go through · %(company)s"),
}


def _day(value: date, locale: str) -> str:
    return format_date(value, "long", locale=locale)


def _customer(store: Store, customer_id: str) -> CustomerData | None:
    data = store.customer_data([customer_id])
    return data[0] if data else None


def _locale(settings: Settings, customer: CustomerData | None) -> str:
    return (customer.customer.locale if customer else "") or settings.default_locale


def customer_messages(settings: Settings, store: Store, customer_id: str, template: str, invoice_id: str,
                      **context: object) -> list[EmailMessage]:
    """One message per billing contact of the customer, each with its own signed link to the invoice, in the
    customer's language. The subject is SUBJECTS[template] with the invoice's `number` and the notice's
    `day_text` (context)."""
    customer = _customer(store, customer_id)
    if customer is None:
        return []
    locale = _locale(settings, customer)
    t = translations_for(locale, settings.default_locale)
    subject = t.gettext(SUBJECTS[template]) % {"number": context["number"], "day": context.get("day_text", ""),
                                               "company": settings.company_name}
    signer = Signer(settings)
    messages = []
    for contact in customer.contacts:
        if contact.role != "billing":
            continue
        url = link_url(settings, signer, customer_id, contact.contact_id, invoice_id, customer.key_version)
        messages.append(render_message(settings, template, (contact.name, contact.email), subject, locale=locale,
                                       customer_name=customer.customer.name, url=url, **context))
    return messages


def texts(settings: Settings, store: Store, customer_id: str, amount: int, currency: str, day: date,
          method_kind: str, last4: str) -> dict[str, object]:
    """The amount, the day and the method as the customer's emails show them: in the customer's locale and
    language."""
    locale = _locale(settings, _customer(store, customer_id))
    t = translations_for(locale, settings.default_locale)
    method = METHOD_TEXT.get(method_kind)
    return {"amount_text": format_money(amount, currency, locale), "day_text": _day(day, locale),
            "method_text": t.gettext(method) if method else method_kind, "last4": last4}


def reason_text(settings: Settings, store: Store, customer_id: str, code: str) -> str:
    """Why a debit failed, in the customer's language (portal.payments.state.customer_reason)."""
    t = translations_for(_locale(settings, _customer(store, customer_id)), settings.default_locale)
    return t.gettext(customer_reason(code=code))


def collector_message(settings: Settings, store: Store, customer_id: str, number: str, amount_text: str,
                      reason: str, tries: int) -> EmailMessage | None:
    """The collector's report of a debit autopay gave up on: English, like every staff email (`locale=None`)."""
    data = _customer(store, customer_id)
    if data is None:
        return None
    customer = data.customer
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
