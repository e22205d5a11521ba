"""`portal send`: one email per contact listing its new or changed open invoices, each with a signed link.

An invoice is listed only while its position (portal/balances/position.py) may be asked for money (open, partly paid),
for what it owes now; a contact with nothing to be asked for gets no email.

Messages are made by portal/mail/messages.py and handed over and recorded by portal/mail/delivery.py (as the
reminders' and the digest's are).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select

from portal.balances import position, rule
from portal.core.config import Settings
from portal.core.i18n import translations_for
from portal.core.links import link_url
from portal.core.signing import Signer
from portal.export.model import Contact, Invoice
from portal.mail.delivery import Outgoing, SendResult, deliver
from portal.mail.messages import invoice_items, one_line, render_message, total_text
from portal.mail.transport import Transport
from portal.store.database import CustomerData, Store
from portal.store.mail import SentRow, sent_hashes
from portal.store.tables import invoices

SEND_ROLES = ("billing", "approver")  # "other" contacts (e.g. a sales rep) get no invoice mail


def send_invoices(settings: Settings, store: Store, dry_run: bool = False, customer_ids: Iterable[str] | None = None,
                  resend: bool = False, now: datetime | None = None, transport: Transport | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Email each billing or approver contact the open invoices it has not been sent in their current form.

    An invoice goes to a contact again only when its content hash changed since (the ERP changed it) or
    with `resend`. Only addresses from the export are ever used.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)  # calendar days are UTC days
    signer = Signer(settings)
    data = store.customer_data(None if customer_ids is None else set(customer_ids))
    with store.begin() as conn:
        source = position.inputs(conn, [d.customer.customer_id for d in data])
        already = sent_hashes(conn)
        hashes = dict(conn.execute(select(invoices.c.invoice_id, invoices.c.content_hash)
                                   .where(invoices.c.is_open)).all())
    result = SendResult(dry_run)
    outgoing = []
    for d in data:
        cid = d.customer.customer_id
        positions = {inv.invoice_id: source.invoice(inv.invoice_id, inv.amount, inv.balance, d.as_of)
                     for inv in d.invoices}
        for contact in d.contacts:
            if contact.role not in SEND_ROLES:
                continue
            chosen, notes = [], {}
            for inv in d.invoices:
                earlier = already.get((cid, contact.contact_id, inv.invoice_id), set())
                # Only what may be asked for: never an invoice that is paid, has a payment pending or is in
                # dispute (it goes out once it may be asked for again, e.g. after a refund).
                if not positions[inv.invoice_id].askable or (hashes[inv.invoice_id] in earlier and not resend):
                    continue
                chosen.append(inv)
                if earlier and hashes[inv.invoice_id] not in earlier:
                    notes[inv.invoice_id] = "updated"
            if not chosen:
                continue
            message = invoices_message(settings, signer, d, contact, chosen, notes, positions)
            rows = [SentRow(cid, contact.contact_id, inv.invoice_id, hashes[inv.invoice_id]) for inv in chosen]
            outgoing.append(Outgoing("invoices", cid, contact.contact_id, contact.email, message, rows,
                                     [inv.number for inv in chosen]))
    return deliver(settings, store, outgoing, dry_run, now, transport, sleep, result)


def invoices_message(settings: Settings, signer: Signer, data: CustomerData, contact: Contact,
                     chosen: list[Invoice], notes: dict[str, str],
                     positions: dict[str, rule.Position]) -> EmailMessage:
    cid, locale = data.customer.customer_id, data.customer.locale
    t = translations_for(locale, settings.default_locale)
    # One invoice is named by its number; several are counted (a plural form: some languages have several).
    subject = (t.gettext("Invoice %(number)s from %(company)s") if len(chosen) == 1 else
               t.ngettext("%(num)d invoice from %(company)s", "%(num)d invoices from %(company)s", len(chosen))) % {
        "number": one_line(chosen[0].number), "num": len(chosen), "company": one_line(settings.company_name)}
    return render_message(
        settings, "invoices", (contact.name, contact.email), subject, locale=locale,
        customer_name=data.customer.name, contact_name=contact.name,
        items=invoice_items(settings, signer, data, contact, chosen, positions, notes),
        total=total_text(data, chosen, positions),
        account_url=link_url(settings, signer, cid, contact.contact_id, "", data.key_version),
        ttl_days=settings.link_ttl_days)
