"""THE rule of what an invoice owes at a moment, and the status that follows (docs/balances.md).

Every output reads what this rule computes and works out nothing of its own: the customer's pages and PDFs, every
email, the staff dashboard, `portal report` and the CSV exports. docs/balances.md explains the rule and the
decisions behind it. In short, per invoice:

    open     = the export's balance - what portal payments (and the credit notes used with them) moved after the
               export's as_of: money settled (succeeded, reinstated; a partial refund less what went back) and
               money on its way (a bank payment still processing); failed, expired, refunded and charged-back
               payments give it back. Never below zero, never above the invoice's amount.
    disputed = what unresolved disputes hold, at most `open`
    due      = open - disputed: the only amount the customer may be asked for
    status   = the first rule of STATUS_RULES that holds (closed, paid, in dispute, payment pending, partly paid,
               open); only ASKABLE statuses are ever asked for money

"After as_of" is judged per movement of the journal (portal/balances/journal.py), so a refund after the export
reopens what a payment before it had paid; a movement recorded before as_of is assumed to be in the ERP's balance
already. This module is pure: no database, no clock. Money is integer minor units throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from portal.core.i18n import N_

OPEN, PARTLY_PAID, PAYMENT_PENDING, PAID, IN_DISPUTE, CLOSED = (
    "open", "partly paid", "payment pending", "paid", "in dispute", "closed")
# English here; shown translated (`t.gettext(position.status_text)`: the strings are in the catalogs).
STATUS_TEXT = {OPEN: N_("Open"), PARTLY_PAID: N_("Partly paid"), PAYMENT_PENDING: N_("Payment pending"),
               PAID: N_("Paid"), IN_DISPUTE: N_("In dispute"), CLOSED: N_("Closed")}
# The same inside a sentence ("balance due $40.00 (partly paid)"): its own messages, as languages differ in case.
STATUS_PHRASE = {OPEN: N_("open"), PARTLY_PAID: N_("partly paid"), PAYMENT_PENDING: N_("payment pending"),
                 PAID: N_("paid"), IN_DISPUTE: N_("in dispute"), CLOSED: N_("closed")}
# The statuses under which the customer may be asked for money (invoice emails, reminders, the digest's "nobody
# viewed it"). Later statuses (promised, on hold) stay out of it unless added here.
ASKABLE = frozenset({OPEN, PARTLY_PAID})
GENERIC_FAILURE = "the payment failed"

# What an attempt's allocations do in each of its states. Any other state (created, failed, expired, refunded,
# disputed, and states added later) moves no money: nothing counts until a payment is settled or on its way.
SETTLING = frozenset({"succeeded", "reinstated", "partially_refunded"})
PENDING = frozenset({"processing"})


@dataclass(frozen=True)
class Entry:
    """One movement of the journal, as the rule and the statement read it."""

    attempt_id: str
    item_id: str
    kind: str
    method: str
    settled: int
    pending: int
    note: str
    at: datetime
    entry_id: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    """An invoice at a moment. Amounts in minor units of the invoice's currency. Built without a status, it
    takes the first of STATUS_RULES that holds."""

    amount: int  # the invoice's total
    balance: int  # open as of the export
    paid: int  # settled in the portal after the export, net of what went back (negative: more went back)
    pending: int  # bank payments on their way now
    open: int  # still owed, not counting money on its way
    disputed: int  # held by unresolved disputes (part of `open`)
    status: str = ""
    failure: str = ""  # why the latest payment failed, while no later one counted

    def __post_init__(self) -> None:
        if not self.status:  # frozen: set once, here, as dataclasses document for derived fields
            object.__setattr__(self, "status", next(name for name, holds in STATUS_RULES if holds(self)))

    @property
    def due(self) -> int:
        """What may be asked for: open less what is in dispute."""
        return self.open - self.disputed

    @property
    def askable(self) -> bool:
        return self.status in ASKABLE

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, self.status.capitalize())


# First match wins. A later status (promised, on hold) is one more rule, inserted where it ranks.
STATUS_RULES: list[tuple[str, Callable[[Position], bool]]] = [
    (PAID, lambda p: p.open == 0 and p.pending == 0),
    (IN_DISPUTE, lambda p: p.disputed > 0),
    (PAYMENT_PENDING, lambda p: p.pending > 0),
    (PARTLY_PAID, lambda p: p.open < p.amount),
    (OPEN, lambda p: True),
]


def compute(amount: int, balance: int, as_of: datetime, entries: Iterable[Entry] = (), held: int = 0,
            is_open: bool = True) -> Position:
    """THE rule: the position of an invoice (or, reading `open`, what a credit note has available) from the
    export's amount and balance, the journal's movements of the item, and what unresolved disputes hold."""
    settled_after = pending_after = pending_now = 0
    failure, failed_at, counted_at = "", None, None
    for e in entries:
        pending_now += e.pending
        if e.at > as_of:
            settled_after += e.settled
            pending_after += e.pending
            if e.kind == "failed" and e.pending < 0:
                if failed_at is None or e.at >= failed_at:
                    failure, failed_at = e.note or GENERIC_FAILURE, e.at
            elif e.settled > 0 or e.pending > 0:
                counted_at = e.at if counted_at is None else max(counted_at, e.at)
    if failed_at is not None and counted_at is not None and counted_at > failed_at:
        failure = ""
    if not is_open:
        return Position(amount, balance, settled_after, 0, 0, 0, CLOSED)
    open_ = min(amount, max(0, balance - settled_after - pending_after))
    return Position(amount, balance, settled_after, max(0, pending_now), open_, min(max(0, held), open_), "", failure)


def attempt_effect(status: str, allocations: Iterable[tuple[str, int]], credits: Iterable[tuple[str, int]],
                   refunded: int, unapplied: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(item kind, item id) -> (settled, pending): what an attempt in `status` does to each invoice and credit note
    it names, from the amounts applied when it first counted. Money refunded (a partial refund, kept through a
    chargeback won later) gives back what no invoice took (unapplied cash) first, then the invoices' money from the
    last allocation back; credit notes stay used. A full refund or a chargeback moves nothing (not SETTLING)."""
    if status in PENDING:
        slot = 1
    elif status in SETTLING:
        slot = 0
    else:
        return {}
    effect: dict[tuple[str, str], tuple[int, int]] = {}
    back = max(0, refunded - unapplied)
    for invoice_id, applied in reversed(list(allocations)):
        take = min(applied, back)
        back -= take
        effect[("invoice", invoice_id)] = (applied - take, 0) if slot == 0 else (0, applied - take)
    for credit_id, applied in credits:
        effect[("credit", credit_id)] = (applied, 0) if slot == 0 else (0, applied)
    return effect


def unapplied_kept(status: str, refunded: int, unapplied: int) -> int:
    """What is left of an attempt's unapplied cash (that no invoice took) in `status`: refunds give it back first
    (as `attempt_effect` does)."""
    return max(0, unapplied - refunded) if status in SETTLING else 0


@dataclass
class Inputs:
    """What the rule needs besides the invoice itself, for some customers: their movements and dispute holds."""

    moves: dict[tuple[str, str], list[Entry]]
    held: dict[str, int]

    def invoice(self, invoice_id: str, amount: int, balance: int, as_of: datetime, is_open: bool = True) -> Position:
        return compute(amount, balance, as_of, self.moves.get(("invoice", invoice_id), ()),
                       self.held.get(invoice_id, 0), is_open)

    def credit_available(self, credit_id: str, amount: int, balance: int, as_of: datetime) -> int:
        return compute(amount, balance, as_of, self.moves.get(("credit", credit_id), ())).open

