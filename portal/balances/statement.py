"""The statement of account: per currency, an opening balance, every document and money movement of the
customer's open items in date order with a running balance, the closing balance and the aging.

The export holds only open items and what each still owes as of its `as_of` (README.md, "Input: the AR export"), so
the statement starts at the oldest open document with an opening balance of zero: everything older is settled in
full and owes nothing. Then (docs/balances.md):
- each open invoice at its total, on its issue date, and each credit note with a balance at its total (negative);
- "settled before <as_of>": per invoice (or credit note) whose export balance is below its total, the difference,
  on the export's date: what was paid, credited or used in our records before the export, one line each;
- each movement of the journal (portal/balances/journal.py) after as_of: payments (settled or pending), credits
  used, refunds, chargebacks and their reversals, failed bank payments, on the day they were recorded.
The running balance ends at the closing balance, which is what the positions say: the sum of the invoices' open
amounts less the credit available. Should the rule's bounds (never below zero, never above the total) take effect,
one more line says so, so the two never disagree. The page and the PDF are rendered from the same lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from gettext import NullTranslations
from typing import Any

from portal.balances.rule import Entry, Inputs, Position
from portal.core.i18n import N_, translations_for
from portal.store.database import CustomerData

# Each line of the statement in the customer's language (portal/core/i18n.py): whole sentences, named values.
MOVEMENT_TEXT = {
    "processing": N_("Bank payment %(ref)s (pending)"),
    "succeeded": N_("Payment %(ref)s"),
    "reinstated": N_("Chargeback of payment %(ref)s reversed"),
    "failed": N_("Bank payment %(ref)s failed"),
    "refunded": N_("Refund of payment %(ref)s"),
    "partially_refunded": N_("Part refund of payment %(ref)s"),
    "disputed": N_("Payment %(ref)s charged back"),
}
METHOD_TEXT = {"card": N_("Payment %(ref)s (card)"), "us_bank_account": N_("Payment %(ref)s (bank transfer)")}


@dataclass(frozen=True)
class _Line:
    when: date
    order: int  # documents, then what was settled before the export, then movements, then corrections
    seq: int
    label: str
    slug: str
    amount: int  # what the line adds to the customer's balance (negative: reduces it)


def _movement(e: Entry, target: str, credit: bool, t: NullTranslations) -> str:
    ref = e.attempt_id
    if e.kind == "succeeded" and e.method in METHOD_TEXT:
        text = t.gettext(METHOD_TEXT[e.method]) % {"ref": ref}
    elif e.kind in MOVEMENT_TEXT:
        text = t.gettext(MOVEMENT_TEXT[e.kind]) % {"ref": ref}
    else:
        text = t.gettext("Payment %(ref)s: %(state)s") % {"ref": ref, "state": e.kind.replace("_", " ")}
    if e.kind == "failed" and e.note:
        text = t.gettext("%(movement)s: %(reason)s") % {"movement": text, "reason": e.note}
    if credit:
        used = e.settled + e.pending > 0
        return (t.gettext("Credit note %(number)s used for payment %(ref)s") % {"number": target, "ref": ref}
                if used else t.gettext("Credit note %(number)s given back (%(movement)s)")
                % {"number": target, "movement": text})
    return t.gettext("%(movement)s, invoice %(number)s") % {"movement": text, "number": target}


def statement(data: CustomerData, source: Inputs, positions: dict[str, Position], available: dict[str, int],
              aging: dict[str, list[dict[str, Any]]], slugs: dict[str, str], money: Callable[[int, str], str],
              fmt_date: Callable[[date], str], t: NullTranslations | None = None) -> list[dict[str, Any]]:
    """Blocks per currency: {currency, opening_date_text, opening_text, rows [{date_iso, date_text, label, slug,
    amount_text, running_text}], closing (minor units), closing_text, aging [{label, text}]}. `positions`: invoice
    id -> its position; `available`: credit id -> available credit; `aging`: currency -> the account page's aging
    cells; `slugs`: invoice id -> its page's name; `t`: the customer's translations (None: English)."""
    t = t or translations_for(None)
    as_of, export_day = data.as_of, data.as_of.date()
    settled = {"day": fmt_date(export_day)}
    lines: dict[str, list[_Line]] = {}

    def add(currency: str, line: _Line) -> None:
        lines.setdefault(currency, []).append(line)

    for inv in data.invoices:
        pos = positions[inv.invoice_id]
        number = {"number": inv.number}
        add(inv.currency, _Line(inv.issue_date, 0, 0, t.gettext("Invoice %(number)s") % number,
                                slugs.get(inv.invoice_id, ""), inv.amount))
        if inv.balance < inv.amount:
            label = t.gettext("Settled before %(day)s (our records), invoice %(number)s") % {**settled, **number}
            add(inv.currency, _Line(export_day, 1, 0, label, "", inv.balance - inv.amount))
        running, last = inv.balance, export_day
        for e in source.moves.get(("invoice", inv.invoice_id), ()):
            change = e.settled + e.pending
            if e.at > as_of and change:
                add(inv.currency, _Line(e.at.date(), 2, e.entry_id, _movement(e, inv.number, False, t), "", -change))
                running, last = running - change, max(last, e.at.date())
        if running != pos.open:  # the rule's bounds took effect
            text = (t.gettext("Paid beyond what was open (held for your account), invoice %(number)s")
                    if running < pos.open else t.gettext("Limited to the invoice total, invoice %(number)s"))
            add(inv.currency, _Line(last, 3, 0, text % {"number": inv.number}, "", pos.open - running))
    for cr in data.credits:
        add(cr.currency, _Line(cr.issue_date, 0, 0, t.gettext("Credit note %(number)s") % {"number": cr.number}, "",
                               -cr.amount))
        if cr.balance < cr.amount:
            add(cr.currency, _Line(export_day, 1, 0,
                                   t.gettext("Settled before %(day)s (our records), credit note %(number)s")
                                   % {**settled, "number": cr.number}, "",
                                   cr.amount - cr.balance))
        running, last = cr.balance, export_day
        for e in source.moves.get(("credit", cr.credit_id), ()):
            change = e.settled + e.pending
            if e.at > as_of and change:
                add(cr.currency, _Line(e.at.date(), 2, e.entry_id, _movement(e, cr.number, True, t), "", change))
                running, last = running - change, max(last, e.at.date())
        if running != available[cr.credit_id]:  # the rule's bounds took effect
            add(cr.currency, _Line(last, 3, 0, t.gettext("Limited to the credit note's total, credit note %(number)s")
                                   % {"number": cr.number}, "",
                                   running - available[cr.credit_id]))
    blocks = []
    for currency in sorted(lines):
        ordered = sorted(lines[currency], key=lambda x: (x.when, x.order, x.seq, x.label))
        balance, rows = 0, []
        for line in ordered:
            balance += line.amount
            rows.append({"date_iso": line.when.isoformat(), "date_text": fmt_date(line.when), "label": line.label,
                         "slug": line.slug, "amount_text": money(line.amount, currency),
                         "running_text": money(balance, currency)})
        blocks.append({"currency": currency, "opening_date_text": fmt_date(ordered[0].when),
                       "opening_text": money(0, currency), "rows": rows, "closing": balance,
                       "closing_text": money(balance, currency), "aging": aging.get(currency, [])})
    return blocks
