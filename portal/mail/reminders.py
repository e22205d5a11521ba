"""`portal remind`: friendly reminders chosen by rules from the configuration (docs/email.md).

Each open invoice is matched against the rules of its customer's group, strongest first:
- `overdue:N`: at least N days past due (the largest N reached; a missed day catches up, it does not
  send every smaller step);
- `before_due:N`: due within N days (the smallest N reached);
- `unopened:N`: emailed by `portal send` at least N days ago and never viewed by a person (`page_viewed`).
Each rule fires at most once per invoice and contact. A contact gets at most one reminder per
`interval_days`, listing every invoice that is due one; invoices it could not get yet stay pending for
the next run. Reminders go to billing contacts; once an invoice had `escalate_after` reminder steps,
approvers are sent it too. Contacts who unsubscribed get none, nor does a customer a collector put on hold
(portal/collect/holds.py), nor an invoice promised to be paid by a day not yet passed (portal/collect/promises.py).
An invoice on an open payment plan (portal/collect/plans.py) is not chased as a whole: it is reminded once per
instalment, from the instalment's day while it is unpaid, for what is due now (rule `instalment:K`), never before.
Only invoices whose position
(portal/balances/position.py)
may be asked for money (open, partly paid) are reminded of, for what they owe now: never one that is paid,
has a payment pending or is in dispute, never for money paid in the portal since the export. A reminder that
would ask for nothing is not sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from gettext import NullTranslations

from babel.dates import format_date
from sqlalchemy import select

from portal.balances import instalments, position
from portal.balances.rule import IN_DISPUTE, PAID, PAYMENT_PENDING, Position
from portal.core.config import Settings
from portal.core.i18n import translations_for
from portal.core.links import link_url
from portal.core.money import format_money
from portal.core.signing import Signer
from portal.export.model import Contact, Invoice
from portal.mail.delivery import Outgoing, SendResult, deliver
from portal.mail.messages import invoice_items, one_line, render_message, total_text
from portal.mail.transport import Transport
from portal.store.collect import held_customers, promised_invoices
from portal.store.database import CustomerData, Store
from portal.store.mail import SentRow, first_sent, last_reminder, mail_sent, unsubscribed
from portal.store.plans import StoredPlan, open_plans
from portal.store.tables import events, invoices


@dataclass(frozen=True)
class Rules:
    days_before_due: tuple[int, ...]
    days_overdue: tuple[int, ...]
    unopened_days: int
    interval_days: int
    escalate_after: int


def rules_for(settings: Settings, group: str) -> Rules:
    """The configured rules, with the customer group's overrides (`reminder_groups`) applied."""
    values = {"days_before_due": settings.reminder_days_before_due, "days_overdue": settings.reminder_days_overdue,
              "unopened_days": settings.reminder_unopened_days, "interval_days": settings.reminder_interval_days,
              "escalate_after": settings.reminder_escalate_after}
    values.update(dict(dict(settings.reminder_groups).get(group, ())))
    return Rules(**values)


def choose_rule(rules: Rules, invoice: Invoice, today_: datetime, sent_at: datetime | None, viewed: bool
                ) -> str:
    """The rule an invoice meets today ('' for none), strongest first."""
    days_to_due = (invoice.due_date - today_.date()).days
    reached = [n for n in rules.days_overdue if -days_to_due >= n]
    if reached:
        return f"overdue:{max(reached)}"
    near = [n for n in rules.days_before_due if 0 <= days_to_due <= n]
    if near:
        return f"before_due:{min(near)}"
    if (rules.unopened_days and sent_at is not None and not viewed
            and today_ - sent_at >= timedelta(days=rules.unopened_days)):
        return f"unopened:{rules.unopened_days}"
    return ""


def send_reminders(settings: Settings, store: Store, dry_run: bool = False, now: datetime | None = None,
                   transport: Transport | None = None, sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Send (or with `dry_run`, list) the reminders the rules call for today."""
    now = (now or datetime.now(UTC)).astimezone(UTC)  # calendar days are UTC days
    signer = Signer(settings)
    data = store.customer_data()
    with store.begin() as conn:
        source = position.inputs(conn)
        sent_at = first_sent(conn)
        last = last_reminder(conn)
        stopped = unsubscribed(conn)
        fired = {tuple(r) for r in conn.execute(
            select(mail_sent.c.customer_id, mail_sent.c.contact_id, mail_sent.c.invoice_id, mail_sent.c.rule)
            .where(mail_sent.c.kind == "reminder").distinct())}
        steps: dict[str, set[str]] = {}
        for invoice_id, rule in conn.execute(select(mail_sent.c.invoice_id, mail_sent.c.rule)
                                             .where(mail_sent.c.kind == "reminder").distinct()):
            steps.setdefault(invoice_id, set()).add(rule)
        viewed = set(conn.execute(select(events.c.invoice_id).where(events.c.kind == "page_viewed",
                                                                    events.c.invoice_id != "").distinct()).scalars())
        hashes = dict(conn.execute(select(invoices.c.invoice_id, invoices.c.content_hash)
                                   .where(invoices.c.is_open)).all())
        held = held_customers(conn, now.date())
        promised = promised_invoices(conn, now.date())
        plans = open_plans(conn)
    result = SendResult(dry_run)
    outgoing = []
    positions: dict[str, Position] = {}
    for d in data:
        cid = d.customer.customer_id
        if cid in held:  # a collector put the customer on hold (docs/collect.md)
            result.skipped.append(f"{cid}: on hold")
            continue
        rules = rules_for(settings, d.customer.group)
        due: list[tuple[Invoice, str]] = []
        plan_notes: dict[str, str] = {}
        for inv in d.invoices:
            pos = positions[inv.invoice_id] = source.invoice(inv.invoice_id, inv.amount, inv.balance, d.as_of)
            if inv.invoice_id in plans:  # chased by its instalments, not as a whole (docs/collect.md)
                rule = _instalment_rule(plans[inv.invoice_id], pos, now, settings, d.customer.locale, plan_notes)
            else:
                rule = choose_rule(rules, inv, now, sent_at.get(inv.invoice_id), inv.invoice_id in viewed)
            if not rule:
                continue
            if not pos.askable:
                result.skipped.append(f"{cid} invoice {inv.number}: {_why_not(pos)} ({rule})")
                continue
            if inv.invoice_id in promised:  # the customer promised to pay it by then (docs/collect.md)
                result.skipped.append(f"{cid} invoice {inv.number}: promised by {promised[inv.invoice_id]} ({rule})")
                continue
            due.append((inv, rule))
        if not due:
            continue
        billing = [c for c in d.contacts if c.role == "billing"]
        approvers = [c for c in d.contacts if c.role == "approver"]
        for contact in billing or approvers:
            _plan(contact, due, d, rules, steps, fired, last, stopped, now, settings, signer, hashes, positions,
                  outgoing, result, plan_notes)
        if billing and rules.escalate_after:
            escalated = [(inv, rule) for inv, rule in due
                         if len(steps.get(inv.invoice_id, ())) >= rules.escalate_after]
            for contact in approvers:
                _plan(contact, escalated, d, rules, steps, fired, last, stopped, now, settings, signer, hashes,
                      positions, outgoing, result, plan_notes)
    return deliver(settings, store, outgoing, dry_run, now, transport, sleep, result)


def _plan(contact: Contact, due: list[tuple[Invoice, str]], data: CustomerData, rules: Rules,
          steps: dict[str, set[str]], fired: set[tuple], last: dict[tuple[str, str], datetime],
          stopped: set[tuple[str, str]], now: datetime, settings: Settings, signer: Signer, hashes: dict[str, str],
          positions: dict[str, Position], outgoing: list[Outgoing], result: SendResult,
          plan_notes: dict[str, str]) -> None:
    """Add one reminder for `contact` listing the invoices whose rule it has not been sent yet. `plan_notes`: the
    instalment due of each invoice on a payment plan (`_instalment_rule`)."""
    cid = data.customer.customer_id
    chosen = [(inv, rule) for inv, rule in due if (cid, contact.contact_id, inv.invoice_id, rule) not in fired]
    if not chosen:
        return
    if (cid, contact.contact_id) in stopped:
        result.skipped.append(f"{cid}/{contact.contact_id}: unsubscribed from reminders")
        return
    previous = last.get((cid, contact.contact_id))
    if previous is not None and now - previous < timedelta(days=rules.interval_days):
        result.skipped.append(f"{cid}/{contact.contact_id}: had a reminder {previous:%Y-%m-%d} "
                              f"(at most one every {rules.interval_days} days)")
        return
    invoices_ = [inv for inv, _ in chosen]
    tr = translations_for(data.customer.locale, settings.default_locale)
    notes = {inv.invoice_id: plan_notes.get(inv.invoice_id) or _note(rule, inv, now, tr) for inv, rule in chosen}
    unsubscribe_url = (f"{settings.effective_webhook_url}/u/"
                       f"{signer.page_token('unsubscribe', cid, data.key_version, contact.contact_id)}")
    overdue = any(rule.startswith("overdue") for _, rule in chosen)
    t, count = translations_for(data.customer.locale, settings.default_locale), len(invoices_)
    # One invoice is named by its number; several are counted (a plural form: some languages have several).
    if count == 1:
        subject = (t.gettext("Overdue: invoice %(number)s from %(company)s") if overdue
                   else t.gettext("Reminder: invoice %(number)s from %(company)s"))
    else:
        subject = (t.ngettext("Overdue: %(num)d invoice from %(company)s", "Overdue: %(num)d invoices from %(company)s",
                              count) if overdue else
                   t.ngettext("Reminder: %(num)d invoice from %(company)s",
                              "Reminder: %(num)d invoices from %(company)s", count))
    subject %= {
        "number": one_line(invoices_[0].number), "num": count, "company": one_line(settings.company_name)}
    message = render_message(
        settings, "reminder", (contact.name, contact.email), subject, locale=data.customer.locale,
        customer_name=data.customer.name, contact_name=contact.name, overdue=overdue,
        items=invoice_items(settings, signer, data, contact, invoices_, positions, notes),
        total=total_text(data, invoices_, positions),
        account_url=link_url(settings, signer, cid, contact.contact_id, "", data.key_version),
        unsubscribe_url=unsubscribe_url, ttl_days=settings.link_ttl_days)
    # RFC 2369 and RFC 8058: mail clients show an "unsubscribe" button that POSTs to the same address.
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    rows = [SentRow(cid, contact.contact_id, inv.invoice_id, hashes.get(inv.invoice_id, ""), rule)
            for inv, rule in chosen]
    outgoing.append(Outgoing("reminder", cid, contact.contact_id, contact.email, message, rows,
                             [inv.number for inv in invoices_]))
    # This run counts too: a second contact of the customer is judged on the same steps.
    for inv, rule in chosen:
        fired.add((cid, contact.contact_id, inv.invoice_id, rule))


def _instalment_rule(plan: StoredPlan, pos: Position, now: datetime, settings: Settings, locale: str,
                     notes: dict[str, str]) -> str:
    """`instalment:K` when instalment K of the invoice's plan is the latest one due and unpaid today (so each
    instalment is reminded once per contact), with its note in `notes`; '' before an instalment's day."""
    state = instalments.state(plan.instalments, plan.total, instalments.arrived(plan.unsettled_at_plan, pos), pos,
                              now.date(), settings.promise_grace_days)
    unpaid = [i for i in state.instalments if i.state in (instalments.DUE, instalments.MISSED)]
    if not unpaid or not state.asked or state.asked_by is None:
        return ""
    t = translations_for(locale, settings.default_locale)
    notes[plan.invoice_id] = t.gettext("instalment %(num)d of %(count)d: %(amount)s due %(date)s") % {
        "num": unpaid[-1].seq, "count": state.count, "amount": format_money(state.asked, plan.currency, locale),
        "date": format_date(state.asked_by, "medium", locale=locale)}
    return f"instalment:{unpaid[-1].seq}"


def _why_not(pos: Position) -> str:
    if pos.status == PAID and pos.paid > 0:
        return "paid in the portal since the export"
    return {IN_DISPUTE: "in dispute", PAYMENT_PENDING: "payment pending"}.get(pos.status, pos.status)


def _note(rule: str, invoice: Invoice, now: datetime, t: NullTranslations) -> str:
    days = (invoice.due_date - now.date()).days
    if days < 0:
        return t.ngettext("%(num)d day overdue", "%(num)d days overdue", -days) % {"num": -days}
    if days == 0:
        return t.gettext("due today")
    return t.ngettext("due in %(num)d day", "due in %(num)d days", days) % {"num": days}
