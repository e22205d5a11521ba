"""An independent model of what each invoice owes, for tests/balances/test_position_property.py.

Written from the rule as docs/balances.md states it, without importing the product: the export's amounts, the
money each payment attempt moves (by step, so "after the export's as_of" is a comparison of steps), what open
disputes hold, and the status that follows. The property test drives the real product and checks every output
against this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ASKABLE = ("open", "partly paid")
LABELS = {"open": "Open", "partly paid": "Partly paid", "payment pending": "Payment pending", "paid": "Paid",
          "in dispute": "In dispute", "closed": "Closed"}
SETTLING = ("succeeded", "reinstated", "partially_refunded")


@dataclass
class Item:
    """An invoice or a credit note as the latest export has it."""

    number: str
    amount: int
    balance: int
    in_export: bool = True


@dataclass
class Attempt:
    attempt_id: str
    method: str
    allocations: list[tuple[str, int]]  # (invoice id, amount chosen), in invoice id order
    credits: list[tuple[str, int]]  # (credit id, amount chosen), in credit id order
    subtotal: int
    amount: int  # charged
    status: str = "created"
    applied: dict[str, int] = field(default_factory=dict)
    credit_applied: dict[str, int] = field(default_factory=dict)
    unapplied: int = 0
    refunded: int = 0
    counted: bool = False


@dataclass
class Model:
    invoices: dict[str, Item]
    credits: dict[str, Item]
    as_of_step: int = 0  # movements at this step or later are after the export's as_of
    step: int = 0
    moves: list[tuple[int, str, str, int, int]] = field(default_factory=list)  # (step, kind, id, settled, pending)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    disputes: dict[int, tuple[str, int, bool]] = field(default_factory=dict)  # id -> (invoice, amount, resolved)

    # --- the rule -------------------------------------------------------------------------------------------

    def _after(self, kind: str, item_id: str) -> int:
        return sum(s + p for step, k, i, s, p in self.moves if k == kind and i == item_id and step >= self.as_of_step)

    def open(self, invoice_id: str) -> int:
        inv = self.invoices[invoice_id]
        if not inv.in_export:
            return 0
        return min(inv.amount, max(0, inv.balance - self._after("invoice", invoice_id)))

    def pending(self, invoice_id: str) -> int:
        if not self.invoices[invoice_id].in_export:
            return 0
        return max(0, sum(p for _, k, i, _, p in self.moves if k == "invoice" and i == invoice_id))

    def held(self, invoice_id: str) -> int:
        return sum(a for i, a, resolved in self.disputes.values() if i == invoice_id and not resolved)

    def disputed(self, invoice_id: str) -> int:
        return min(self.held(invoice_id), self.open(invoice_id))

    def due(self, invoice_id: str) -> int:
        return self.open(invoice_id) - self.disputed(invoice_id)

    def status(self, invoice_id: str) -> str:
        inv = self.invoices[invoice_id]
        if not inv.in_export:
            return "closed"
        open_, pending = self.open(invoice_id), self.pending(invoice_id)
        if open_ == 0 and pending == 0:
            return "paid"
        if self.disputed(invoice_id) > 0:
            return "in dispute"
        if pending > 0:
            return "payment pending"
        return "partly paid" if open_ < inv.amount else "open"

    def available(self, credit_id: str) -> int:
        cr = self.credits[credit_id]
        return min(cr.amount, max(0, cr.balance - self._after("credit", credit_id)))

    def settled_total(self, invoice_id: str) -> int:
        """What settled portal payments hold on the invoice now, whenever they were made (the cash application)."""
        return sum(s for _, k, i, s, _ in self.moves if k == "invoice" and i == invoice_id)

    # --- money that payments move ----------------------------------------------------------------------------

    def _effect(self, a: Attempt) -> dict[tuple[str, str], tuple[int, int]]:
        if a.status not in (*SETTLING, "processing"):
            return {}
        slot = 1 if a.status == "processing" else 0
        effect = {}
        back = max(0, a.refunded - a.unapplied)
        for invoice_id, _ in reversed(a.allocations):
            kept = a.applied.get(invoice_id, 0)
            take = min(kept, back)
            back -= take
            effect[("invoice", invoice_id)] = (kept - take, 0) if slot == 0 else (0, kept - take)
        for credit_id, _ in a.credits:
            used = a.credit_applied.get(credit_id, 0)
            effect[("credit", credit_id)] = (used, 0) if slot == 0 else (0, used)
        return effect

    def move(self, attempt_id: str, status: str, refunded: int | None = None) -> None:
        """The attempt reaches `status` (the test sends only events that lead there); record what moved."""
        a = self.attempts[attempt_id]
        before = self._effect(a)
        if status in (*SETTLING, "processing") and not a.counted:
            self._count(a)
        a.status = status
        if refunded is not None:
            a.refunded = refunded
        after = self._effect(a)
        for key in sorted(set(before) | set(after)):
            s0, p0 = before.get(key, (0, 0))
            s1, p1 = after.get(key, (0, 0))
            if (s0, p0) != (s1, p1):
                self.moves.append((self.step, key[0], key[1], s1 - s0, p1 - p0))

    def _count(self, a: Attempt) -> None:
        """When a payment first counts, each invoice takes what it can (what is open without it), credits first."""
        usable = {c: min(chosen, self.available(c)) for c, chosen in a.credits}
        cash = a.subtotal - sum(chosen for _, chosen in a.credits)
        funds = cash + sum(usable.values())
        for invoice_id, chosen in a.allocations:
            inv = self.invoices[invoice_id]
            can = 0 if not inv.in_export else min(inv.amount, max(0, inv.balance - self._after("invoice", invoice_id)))
            a.applied[invoice_id] = min(chosen, can, funds)
            funds -= a.applied[invoice_id]
        left = credit_used = min(sum(usable.values()), sum(a.applied.values()))
        for credit_id, _ in a.credits:
            a.credit_applied[credit_id] = min(usable[credit_id], left)
            left -= a.credit_applied[credit_id]
        a.unapplied = cash - (sum(a.applied.values()) - credit_used)
        a.counted = True
