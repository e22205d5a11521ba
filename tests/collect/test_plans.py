"""Payment plans on SQLite and PostgreSQL: the split and the days, what may be planned and by whom, and how
instalments are judged paid, missed (a broken promise on the worklist and in the activity report) or the plan
kept, from what the balances rule says arrived."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from portal.collect.access import CollectRefused
from portal.collect.plans import (
    MAX_COUNT,
    Proposal,
    cancel_plan,
    customer_plans,
    even_split,
    judge_plans,
    make_plan,
    preview,
    schedule_days,
)
from portal.collect.touches import customer_touches
from portal.collect.worklist import build_worklist
from portal.disputes.service import submit_dispute
from portal.payments.autopay import collector_blocks
from portal.payments.pricing import Payable, PaymentRefused, quote
from portal.staff.activity import activity
from portal.store.collect import touches
from portal.store.plans import payment_plans, plan_instalments
from tests.collect_helpers import CARA, NOW, TODAY, VIV, settling_bank_payment
from tests.smtpserver import changed

# mail_ledger, C1 (collector Cara): SOON 100.00 due +2, LATER 200.00 +19, OD5 300.00 -5, OD20 400.00 -20,
# DISP 500.00 -10, PEND 600.00 -8; C2 (no collector): B1 50.00 -3.


def _count(store, table) -> int:
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _plan(store, invoice_id="I-OD20", frequency="weekly", start=TODAY, count="4", amounts=(), actor=CARA,
          customer_id="C1", now=NOW):
    return make_plan(store, actor, customer_id, Proposal(invoice_id, frequency, start.isoformat(), str(count),
                                                         tuple(amounts)), now=now)


@given(total=st.integers(min_value=MAX_COUNT, max_value=10**12), count=st.integers(min_value=2, max_value=MAX_COUNT))
def test_the_even_split_sums_to_the_total_each_above_zero_and_the_last_balances(total, count):
    parts = even_split(total, count)
    assert len(parts) == count and sum(parts) == total
    assert all(p > 0 for p in parts)
    assert len(set(parts[:-1])) == 1 and parts[-1] >= parts[0]


def test_monthly_keeps_the_day_of_the_month_clamped_to_the_months_end():
    assert schedule_days(date(2027, 1, 31), "monthly", 4) == [date(2027, 1, 31), date(2027, 2, 28),
                                                             date(2027, 3, 31), date(2027, 4, 30)]
    assert schedule_days(date(2026, 12, 1), "biweekly", 3) == [date(2026, 12, 1), date(2026, 12, 15),
                                                              date(2026, 12, 29)]
    assert schedule_days(date(2026, 12, 1), "weekly", 2) == [date(2026, 12, 1), date(2026, 12, 8)]


def test_a_plan_splits_what_the_invoice_owes_and_is_on_the_timeline(store, ledger, settings):
    plan_id = _plan(store, "I-OD20", "monthly", TODAY + timedelta(days=30), 3)
    [plan] = customer_plans(store, settings, "C1", NOW)
    assert (plan["plan_id"], plan["total"], plan["currency"], plan["status"]) == (plan_id, 40000, "USD", "open")
    assert [(i.day, i.amount, i.state) for i in plan["state"].instalments] == [
        (date(2026, 12, 31), 13333, "upcoming"), (date(2027, 1, 31), 13333, "upcoming"),
        (date(2027, 2, 28), 13334, "upcoming")]
    assert plan["state"].asked == 13333 and plan["state"].asked_by == date(2026, 12, 31)
    [touch] = customer_touches(store, CARA, "C1", private_notes=False)
    assert touch["kind"] == "plan" and touch["invoices"] == ["INV-OD20<i>"] and "3 instalments" in touch["body"]
    with store.begin() as conn:
        assert collector_blocks(conn, "C1", ["I-OD20", "I-OD5"], TODAY) == {"I-OD20": "on a payment plan"}


def test_typed_amounts_are_kept_and_must_add_up_to_the_total(store, ledger, settings):
    _plan(store, "I-OD5", count=2, amounts=("100.00", "200.00"))
    [plan] = customer_plans(store, settings, "C1", NOW)
    assert [i.amount for i in plan["state"].instalments] == [10000, 20000]


@pytest.mark.parametrize("invoice_id, frequency, start, count, amounts, says", [
    ("I-B1", "weekly", 0, 2, (), "not an invoice of customer 'C1'"),
    ("", "weekly", 0, 2, (), "choose the invoice"),
    ("I-OD5", "daily", 0, 2, (), "Frequency"),
    ("I-OD5", "weekly", 0, 1, (), "2 to 36 instalments"),
    ("I-OD5", "weekly", 0, 37, (), "2 to 36 instalments"),
    ("I-OD5", "weekly", 0, "two", (), "not a whole number"),
    ("I-OD5", "weekly", -1, 2, (), "has passed"),
    ("I-OD5", "weekly", 367, 2, (), "at most 366 days"),
    ("I-OD5", "weekly", 0, 2, ("100.00", "199.99"), "add up to $299.99; they must add up to $300.00"),
    ("I-OD5", "weekly", 0, 2, ("300.00", "0"), "Instalment 2: the amount must be more than zero"),
    ("I-OD5", "weekly", 0, 2, ("abc", "300.00"), "Instalment 1:"),
    ("I-OD5", "weekly", 0, 3, ("100.00", "200.00"), "give 3 amounts"),
])
def test_a_refused_plan_writes_nothing_and_says_why(store, ledger, invoice_id, frequency, start, count, amounts,
                                                      says):
    with pytest.raises(CollectRefused) as refused:
        _plan(store, invoice_id, frequency, TODAY + timedelta(days=start), count, amounts)
    assert says in refused.value.message
    assert _count(store, payment_plans) == 0 and _count(store, plan_instalments) == 0 and _count(store, touches) == 0


def test_a_viewer_can_neither_plan_nor_preview_nor_cancel(store, ledger):
    with pytest.raises(CollectRefused) as refused:
        _plan(store, actor=VIV)
    assert refused.value.status == 403
    with pytest.raises(CollectRefused):
        preview(store, VIV, "C1", Proposal("I-OD5", "weekly", TODAY.isoformat(), "2"))
    plan_id = _plan(store)
    with pytest.raises(CollectRefused):
        cancel_plan(store, VIV, "C1", plan_id)
    assert _count(store, payment_plans) == 1


def test_an_invoice_that_owes_nothing_is_disputed_or_already_planned_is_refused(store, ledger, settings):
    store.import_snapshot(changed(ledger, "I-OD5", balance=0))
    with pytest.raises(CollectRefused, match="owes nothing"):
        _plan(store, "I-OD5")
    submit_dispute(store, settings, "C1", ["I-DISP"], {"I-DISP": "50.00"}, settings.dispute_reasons[0], "short")
    with pytest.raises(CollectRefused, match="in dispute"):
        _plan(store, "I-DISP")
    plan_id = _plan(store, "I-OD20")
    with pytest.raises(CollectRefused, match="already has a payment plan"):
        _plan(store, "I-OD20")
    cancel_plan(store, CARA, "C1", plan_id)  # a cancelled plan leaves the invoice free for a new one
    _plan(store, "I-OD20")
    with pytest.raises(CollectRefused):
        cancel_plan(store, CARA, "C2", plan_id)  # another customer's plan id


def test_a_missed_instalment_is_a_broken_promise_once_and_a_paid_plan_is_kept(store, ledger, settings):
    grace = settings.replace(promise_grace_days=2, worklist_large_amount=10**9, worklist_big_account=10**9)
    _plan(store, "I-OD20", "weekly", TODAY, 2)  # 200.00 on Dec 1, 200.00 on Dec 8
    assert judge_plans(store, grace, NOW + timedelta(days=2)) == {"kept": 0, "missed": 0}  # within the grace
    later = NOW + timedelta(days=3)
    assert judge_plans(store, grace, later) == {"kept": 0, "missed": 1}
    assert judge_plans(store, grace, later + timedelta(hours=1)) == {"kept": 0, "missed": 0}  # recorded once
    wl = build_worklist(store, grace, CARA.email, later)
    [item] = [i for i in wl.todo if i.reason == "promise_broken"]
    assert item.label == "Promise broken" and item.detail.startswith("instalment 1 of 2 missed")
    assert item.amount == 20000
    report = activity(store, grace, "week", TODAY, CARA.email)
    [row] = report["rows"]
    assert (row["promises_made"], row["promises_broken"], row["promises_kept"]) == (1, 1, 0)
    # The ERP booked 150.00, then the rest: instalment 1 is paid once 200.00 arrived, the plan kept at 400.00.
    store.import_snapshot(changed(ledger, "I-OD20", balance=25000))
    [plan] = customer_plans(store, grace, "C1", later)
    assert [i.state for i in plan["state"].instalments] == ["missed", "upcoming"]
    assert plan["state"].asked == 5000  # what instalment 1 still needs
    store.import_snapshot(changed(ledger, "I-OD20", balance=0))
    assert judge_plans(store, grace, later) == {"kept": 1, "missed": 0}
    [plan] = customer_plans(store, grace, "C1", later)
    assert plan["status"] == "kept" and plan["state"].paid_in_full
    kinds = [t["kind"] for t in customer_touches(store, CARA, "C1", private_notes=False)]
    assert kinds.count("promise_broken") == 1 and kinds.count("promise_kept") == 1
    with store.begin() as conn:
        assert collector_blocks(conn, "C1", ["I-OD20"], TODAY) == {}  # a kept plan blocks autopay no more


def test_a_planned_invoice_may_be_paid_in_part_even_when_part_payments_are_off(settings):
    whole_only = settings.replace(partial_payments=False)
    planned = Payable("I-1", "INV-1", "USD", 40000, planned=True)
    assert quote(whole_only, [planned], {"I-1": 10000}, "card").subtotal == 10000
    with pytest.raises(PaymentRefused, match="only be paid in full"):
        quote(whole_only, [Payable("I-1", "INV-1", "USD", 40000)], {"I-1": 10000}, "card")
    with pytest.raises(PaymentRefused):  # never more than the invoice's due, plan or not
        quote(whole_only, [planned], {"I-1": 40001}, "card")


def test_an_instalment_below_the_part_payment_minimum_is_still_payable(settings):
    strict = settings.replace(partial_payments=False, partial_minimum=20000)
    planned = Payable("I-1", "INV-1", "USD", 40000, planned=True, plan_asked=5000)
    assert quote(strict, [planned], {"I-1": 5000}, "card").subtotal == 5000  # the instalment asked for now
    with pytest.raises(PaymentRefused, match="at least the minimum"):  # less than the instalment: the minimum holds
        quote(strict, [planned], {"I-1": 4999}, "card")
    with pytest.raises(PaymentRefused, match="at least the minimum"):  # no plan: the minimum as before
        quote(settings.replace(partial_minimum=20000), [Payable("I-1", "INV-1", "USD", 40000)], {"I-1": 5000}, "card")


def test_the_pay_form_accepts_the_instalment_asked_for_below_the_minimum(store, ledger, settings):
    from portal.payments.start import payable_invoices

    _plan(store, "I-OD20", "weekly", TODAY, 8)  # 400.00 in eight instalments of 50.00, the first due today
    with store.begin() as conn:
        [payable], requested = payable_invoices(conn, "C1", ["I-OD20"], {"I-OD20": "50.00"}, today=TODAY)
    assert payable.planned and payable.plan_asked == 5000
    strict = settings.replace(partial_payments=False, partial_minimum=20000)
    assert quote(strict, [payable], requested, "card").subtotal == 5000


def test_a_planned_invoice_is_neither_a_large_overdue_amount_nor_due_soon_on_the_worklist(store, ledger, settings):
    limits = settings.replace(worklist_large_amount=35000, worklist_big_account=100000, worklist_due_soon_days=7)

    def items():
        return {i.reason: i.amount for i in build_worklist(store, limits, CARA.email, NOW).todo}

    assert items()["large_unviewed"] == 150000 and items()["due_soon_big"] == 10000
    _plan(store, "I-OD20", "weekly", TODAY, 4)
    _plan(store, "I-SOON", "weekly", TODAY, 2)
    assert items()["large_unviewed"] == 110000  # OD20's 400.00 is chased by its instalments now
    assert "due_soon_big" not in items()


def test_a_bank_payment_still_settling_has_not_arrived_for_a_plan(store, ledger, settings):
    _plan(store, "I-OD5", "weekly", TODAY, 2)
    settling_bank_payment(store)
    assert judge_plans(store, settings, NOW + timedelta(days=30)) == {"kept": 0, "missed": 2}
