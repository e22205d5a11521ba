"""THE rule (portal/balances/rule.py) on its own: statuses, bounds, what an attempt moves, "after as_of" per
movement. No database: tests/balances/test_stored.py holds the stored form to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal.balances.rule import Entry, attempt_effect, compute

AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
BEFORE, AFTER = AS_OF - timedelta(hours=1), AS_OF + timedelta(hours=1)


def moved(settled: int = 0, pending: int = 0, at: datetime = AFTER, kind: str = "succeeded", note: str = "") -> Entry:
    return Entry("pa_1", "I1", kind, "card", settled, pending, note, at)


@pytest.mark.parametrize(("balance", "entries", "held", "status", "open_", "due"), [
    (50360, [], 0, "open", 50360, 50360),
    (30000, [], 0, "partly paid", 30000, 30000),  # paid in part in the ERP
    (50360, [moved(20000)], 0, "partly paid", 30360, 30360),  # the issue's $200.00 of $503.60
    (50360, [moved(50360)], 0, "paid", 0, 0),
    (0, [], 0, "paid", 0, 0),
    (50360, [moved(pending=50360, kind="processing")], 0, "payment pending", 0, 0),
    (50360, [moved(pending=20000, kind="processing")], 0, "payment pending", 30360, 30360),
    (50360, [], 10000, "in dispute", 50360, 40360),
    (50360, [moved(pending=40360, kind="processing")], 10000, "in dispute", 10000, 0),  # the dispute ranks first
    (50360, [moved(20000)], 90000, "in dispute", 30360, 0),  # a hold never exceeds what is open
])
def test_the_status_is_the_first_rule_that_holds(balance, entries, held, status, open_, due):
    p = compute(50360, balance, AS_OF, entries, held)
    assert (p.status, p.open, p.due) == (status, open_, due)
    assert p.askable == (status in ("open", "partly paid"))


def test_a_closed_invoice_owes_nothing_whatever_moved():
    p = compute(50360, 50360, AS_OF, [moved(pending=100, kind="processing")], 500, is_open=False)
    assert (p.status, p.open, p.disputed, p.pending, p.due) == ("closed", 0, 0, 0, 0)


def test_open_is_never_below_zero_nor_above_the_invoice_amount():
    assert compute(50360, 10000, AS_OF, [moved(20000)]).open == 0  # paid twice over: nothing owed
    assert compute(50360, 50360, AS_OF, [moved(-20000, kind="refunded")]).open == 50360  # refund of a paid-in-ERP


def test_movements_before_as_of_are_in_the_export_balance_and_money_given_back_after_it_reopens():
    paid_before_refunded_after = [moved(20000, at=BEFORE), moved(-20000, at=AFTER, kind="refunded")]
    p = compute(50360, 30360, AS_OF, paid_before_refunded_after)
    assert (p.open, p.status) == (50360, "open")
    assert compute(50360, 30360, AS_OF, [moved(20000, at=BEFORE)]).open == 30360  # the ERP has it


def test_a_bank_payment_pending_before_the_export_still_shows_pending_and_a_failure_after_it_reopens():
    pending_before = [moved(pending=20000, at=BEFORE, kind="processing")]
    p = compute(50360, 30360, AS_OF, pending_before)
    assert (p.open, p.pending, p.status) == (30360, 20000, "payment pending")
    failed = compute(50360, 30360, AS_OF, [*pending_before, moved(pending=-20000, kind="failed",
                                                                 note="insufficient funds")])
    assert (failed.open, failed.pending, failed.status, failed.failure) == (50360, 0, "open", "insufficient funds")


def test_a_later_payment_clears_the_failure_note():
    entries = [moved(pending=100, kind="processing"), moved(pending=-100, kind="failed", note="no account",
                                                            at=AFTER + timedelta(minutes=1)),
               moved(100, at=AFTER + timedelta(minutes=2))]
    assert compute(50360, 50360, AS_OF, entries).failure == ""


@pytest.mark.parametrize(("status", "refunded", "want"), [
    ("created", 0, {}),
    ("processing", 0, {("invoice", "A"): (0, 300), ("invoice", "B"): (0, 200), ("credit", "C"): (0, 50)}),
    ("succeeded", 0, {("invoice", "A"): (300, 0), ("invoice", "B"): (200, 0), ("credit", "C"): (50, 0)}),
    # a part refund of 250: 100 of unapplied cash first, then 150 of the last invoice; the credit stays used
    ("partially_refunded", 250, {("invoice", "A"): (300, 0), ("invoice", "B"): (50, 0), ("credit", "C"): (50, 0)}),
    ("reinstated", 250, {("invoice", "A"): (300, 0), ("invoice", "B"): (50, 0), ("credit", "C"): (50, 0)}),
    ("refunded", 600, {}), ("disputed", 0, {}), ("failed", 0, {}), ("expired", 0, {}),
    ("requires_action", 0, {}),  # a state this rule does not know moves nothing
])
def test_what_an_attempt_moves_in_each_state(status, refunded, want):
    effect = attempt_effect(status, [("A", 300), ("B", 200)], [("C", 50)], refunded, unapplied=100)
    assert effect == want


def test_amounts_stay_integers():
    p = compute(10 ** 15 + 1, 10 ** 15 + 1, AS_OF, [moved(1)], 3)
    assert all(isinstance(v, int) for v in (p.open, p.disputed, p.pending, p.paid, p.due))
    assert p.open == 10 ** 15
