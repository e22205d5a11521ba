"""The messages the portal sends, made from `templates/email/<name>.txt` and `.html` (docs/email.md).

`render_message` makes every header built from data one line (`one_line`): an invoice number, a customer or
company name with a line break in it cannot fail the message or add a header (Bcc:, ...). HTML parts are
escaped; plain-text parts are not (an "&" in a company name stays "&"). The invoice emails and the reminders
list their invoices alike (`invoice_items`, `total_text`): what each invoice's position may ask for now
(portal/balances/position.py), never the export's balance, formatted in the customer's locale.
"""

from __future__ import annotations

import re
from datetime import date
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from portal.balances import rule
from portal.core.config import Settings
from portal.core.i18n import html_lang, language_for, translations_for
from portal.core.links import link_url
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.core.templating import template_dirs
from portal.export.model import Contact, Invoice
from portal.store.database import CustomerData


@lru_cache(maxsize=32)
def _environment(dirs: tuple[Path, ...], language: str | None) -> Environment:
    # HTML parts are escaped; plain-text parts must not be (an "&" in a company name stays "&").
    env = Environment(loader=ChoiceLoader([FileSystemLoader(str(d)) for d in dirs]),
                      autoescape=select_autoescape(["html"], default_for_string=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.i18n"])
    # One environment per language (docs/translations.md); None: as written, for the staff's emails.
    if language is None:
        env.install_null_translations(newstyle=True)
    else:
        env.install_gettext_translations(translations_for(language), newstyle=True)  # type: ignore[attr-defined]
    return env


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Text for a header (a subject, a display name): control characters and line breaks become spaces (a line
    break is refused in a header, and would end it), runs of spaces one."""
    return " ".join(_CONTROL.sub(" ", text).split())


def render_message(settings: Settings, template: str, to: tuple[str, str], subject: str, *,
                   locale: str | None = None, **context: object) -> EmailMessage:
    """A multipart (text + HTML) message from `templates/email/<template>.txt` and `.html`.

    `to` is (name, address). Every header built from data is made here and made one line (`one_line`): an
    invoice number, a customer or company name with a line break in it cannot fail the message or add a header.
    `locale`: the customer's (customers.csv), whose language the body is written in (the caller translated the
    subject with `translations_for(locale)`); None: as written (the staff's emails).
    """
    language = language_for(locale, settings.default_locale) if locale is not None else None
    env = _environment(tuple(template_dirs(settings)), language)
    context = {"company": settings.company_name, "support_email": settings.support_email,
               "lang": html_lang(locale, settings.default_locale) if locale is not None else "en", **context}
    message = EmailMessage()
    message["Subject"] = one_line(subject)
    message["From"] = formataddr((one_line(settings.company_name), settings.mail_from or settings.support_email))
    name, address = to
    message["To"] = Address(display_name=one_line(name), addr_spec=address)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(env.get_template(f"email/{template}.txt").render(**context))
    message.add_alternative(env.get_template(f"email/{template}.html").render(**context), subtype="html")
    return message


def fresh_link_message(settings: Settings, to: tuple[str, str], customer_name: str, url: str,
                       invoice_number: str = "", locale: str | None = None) -> EmailMessage:
    """The answer to "email me a fresh link": a new signed link for a contact on file."""
    t = translations_for(locale, settings.default_locale)
    subject = (t.gettext("Your link to invoice %(number)s from %(company)s") if invoice_number
               else t.gettext("Your link to your account with %(company)s"))
    subject %= {"number": invoice_number, "company": settings.company_name}
    return render_message(settings, "fresh_link", to, subject, locale=locale or "", customer_name=customer_name,
                          url=url,
                          invoice_number=invoice_number, contact_name=to[0], ttl_days=settings.link_ttl_days)


# --- what the invoice emails and reminders list ---------------------------------------------------------------


def money(minor: int, currency: str, locale: str) -> str:
    return format_money(minor, currency, locale)


def day(value: date, locale: str) -> str:
    return format_date(value, "medium", locale=locale)


def invoice_items(settings: Settings, signer: Signer, data: CustomerData, contact: Contact,
                  chosen: list[Invoice], positions: dict[str, rule.Position],
                  notes: dict[str, str] | None = None) -> list[dict[str, object]]:
    """What the templates show per invoice: number, dates, amounts formatted in the customer's locale, link.
    `balance` is what the invoice's position says may be asked for now (portal/balances/position.py), never the export's
    balance; `status` the position's status, in the customer's language."""
    locale, cid = data.customer.locale, data.customer.customer_id
    t = translations_for(locale, settings.default_locale)
    return [{"number": inv.number, "issue_date": day(inv.issue_date, locale), "due_date": day(inv.due_date, locale),
             "amount": money(inv.amount, inv.currency, locale),
             "balance": money(positions[inv.invoice_id].due, inv.currency, locale),
             "status": t.gettext(rule.STATUS_PHRASE[status]) if (status := positions[inv.invoice_id].status)
             in rule.STATUS_PHRASE else status,
             "po_number": inv.po_number, "note": (notes or {}).get(inv.invoice_id, ""),
             "url": link_url(settings, signer, cid, contact.contact_id, inv.invoice_id, data.key_version)}
            for inv in chosen]


def total_text(data: CustomerData, chosen: list[Invoice], positions: dict[str, rule.Position]) -> str:
    """The total of what the listed invoices' positions ask for, when they share one currency (otherwise no
    total is shown)."""
    currencies = {inv.currency for inv in chosen}
    if len(currencies) != 1:
        return ""
    return money(sum(positions[inv.invoice_id].due for inv in chosen), currencies.pop(), data.customer.locale)
