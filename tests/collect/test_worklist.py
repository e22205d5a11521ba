"""Today's worklist on SQLite and PostgreSQL: each reason, the documented order, done by logging a touch, snoozed,
holds, broken promises, and reassignment (managers only)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.collect.access import Actor, CollectRefused
from portal.collect.holds import place_hold
from portal.collect.portfolio import portfolio
from portal.collect.promises import Offer, log_touch_with_promise
from portal.collect.touches import log_touch
from portal.collect.worklist import build_worklist, reassign, snooze
from portal.disputes.service import submit_question
from portal.store.eventlog import EventLog
from tests.collect_helpers import CARA, MIA, NOW, TODAY

# mail_ledger, C1 (collector Cara): SOON 100.00 due +2, LATER 200.00 +19, OD5 300.00 -5, OD20 400.00 -20,
# DISP 500.00 -10, PEND 600.00 -8 (2,100.00 open); C2 (no collector): B1 50.00 -3.


@pytest.fixture
def limits(settings):
    return settings.replace(worklist_large_amount=35000, worklist_big_account=100000, worklist_due_soon_days=7,
                            promise_grace_days=3)


def _reasons(wl):
    return [(i.customer_id, i.reason) for i in wl.todo]


def _setup(store):
    log_touch_with_promise(store, CARA, "C1", "call", Offer(("I-OD5",), "300.00", TODAY.isoformat()),
                           outcome="reached", now=NOW - timedelta(days=2))
    submit_question(store, "C1", "", "Where is my credit?", now=NOW - timedelta(hours=2))


def test_each_reason_in_the_documented_order(store, ledger, limits):
    _setup(store)
    wl = build_worklist(store, limits, CARA.email, NOW)
    assert _reasons(wl) == [("C1", "promise_due_today"), ("C1", "unanswered"), ("C1", "large_unviewed"),
                            ("C1", "due_soon_big")]
    large = wl.todo[2]
    assert (large.amount, large.currency) == (150000, "USD")  # OD20 + DISP + PEND: each at least 350.00, unviewed
    assert wl.todo[3].amount == 10000 and "first due 2026-12-03" in wl.todo[3].detail
    assert build_worklist(store, limits, "dan@supplier.example", NOW).todo == []  # another collector's list
    assert [i.customer_id for i in build_worklist(store, limits, "", NOW).todo] == ["C1"] * 4  # the team's


def test_a_person_viewing_an_invoice_takes_it_off_the_large_unviewed_and_a_link_fetch_does_not(store, ledger,
                                                                                                  limits):
    def large():
        return [i.amount for i in build_worklist(store, limits, CARA.email, NOW).todo if i.reason == "large_unviewed"]

    assert large() == [150000]  # OD20 400.00 + DISP 500.00 + PEND 600.00
    log = EventLog(store)  # the webhook's hot path: raw driver statements, kept by the trigger all the same
    assert log.record_if_current("page_viewed", "C1", 1, "I-OD20") is not None
    assert log.record_if_current("link_opened", "C1", 1, "I-DISP") is not None  # maybe a scanner: not a person
    log.close()
    assert large() == [110000]
    with store.begin() as conn:  # the store's own way in
        store.add_event(conn, "page_viewed", "C1", invoice_id="I-PEND")
        store.add_event(conn, "page_viewed", "C1", invoice_id="I-PEND")  # a second view: still one row
    assert large() == [50000]


def test_the_list_comes_in_pages_in_order_with_every_reasons_count(store, ledger, limits):
    _setup(store)
    whole = build_worklist(store, limits, CARA.email, NOW)
    pages = [build_worklist(store, limits, CARA.email, NOW, page=n, per_page=3) for n in (1, 2, 3)]
    assert [len(p.todo) for p in pages] == [3, 1, 0] and pages[0].pages == 2
    assert [i.reason for p in pages for i in p.todo] == [i.reason for i in whole.todo]
    assert pages[1].counts == whole.counts == {"promise_due_today": 1, "unanswered": 1, "large_unviewed": 1,
                                               "due_soon_big": 1}
    assert pages[1].todo_total == 4 and pages[1].done_total == 0


def test_a_touch_marks_the_items_done_and_a_snooze_puts_one_off(store, ledger, limits):
    _setup(store)
    snooze(store, CARA, "C1", "large_unviewed", TODAY + timedelta(days=1), now=NOW)
    wl = build_worklist(store, limits, CARA.email, NOW)
    assert ("C1", "large_unviewed") not in _reasons(wl) and wl.snoozed == 1
    assert ("C1", "large_unviewed") in _reasons(build_worklist(store, limits, CARA.email, NOW + timedelta(days=2)))
    log_touch(store, CARA, "C1", "call", outcome="reached", now=NOW + timedelta(minutes=5))
    done = build_worklist(store, limits, CARA.email, NOW + timedelta(minutes=6))
    assert done.todo == [] and len(done.done) == 4


def test_a_broken_promise_comes_first_and_a_hold_keeps_only_the_urgent(store, ledger, limits):
    _setup(store)
    log_touch(store, CARA, "C1", "note", body="Waiting for the money", now=NOW)
    later = NOW + timedelta(days=5)  # the promised day (TODAY) plus three grace days has passed, nothing arrived
    wl = build_worklist(store, limits, CARA.email, later)
    assert _reasons(wl)[0] == ("C1", "promise_broken") and wl.todo[0].label == "Promise broken"
    place_hold(store, CARA, "C1", "Talks", (later + timedelta(days=3)).date(), now=later)
    held = build_worklist(store, limits, CARA.email, later + timedelta(minutes=1))
    # On hold: only the urgent reason stays (placing a hold is no contact with the customer: not done).
    assert _reasons(held) == [("C1", "promise_broken")]
    ended = build_worklist(store, limits, CARA.email, later + timedelta(days=4))
    assert ("C1", "hold_ended") in _reasons(ended)


def test_only_managers_reassign_and_the_new_collector_gets_the_customer(store, ledger, limits):
    for who in (CARA, Actor("viv@supplier.example", "viewer")):
        with pytest.raises(CollectRefused) as refused:
            reassign(store, who, "C2", CARA.email)
        assert refused.value.status == 403
    assert [c["customer_id"] for c in portfolio(store, CARA.email, TODAY)] == ["C1"]
    reassign(store, MIA, "C2", "Cara@Supplier.example", now=NOW)
    assert [c["customer_id"] for c in portfolio(store, CARA.email, TODAY)] == ["C1", "C2"]
    with pytest.raises(CollectRefused, match="email address"):
        reassign(store, MIA, "C2", "nobody")
