"""Stripe's events in any order, repeated: the attempt ends in the same state
(portal.payments.state, portal.payments.events).

Property tests over every permutation Hypothesis picks of each payment path's events (tests/stripe_paths.py),
with duplicates and with all events in one second (ties), first on the pure derivation, then through the
store on SQLite and PostgreSQL (orphans, claiming, counting the payment against its invoice).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from portal.payments.events import apply_event
from portal.payments.state import derive, merge, read_event
from portal.store import payments as paystore
from portal.store.tables import events as event_log
from tests.stripe_paths import PATHS, path_events
from tests.stripe_standin import StripeStandIn
from tests.webhook_helpers import import_sample

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_attempts = itertools.count(1)


@pytest.fixture(scope="module")
def standin():
    server = StripeStandIn()  # objects only: no request is made
    yield server
    server.server.server_close()


def _session(standin: StripeStandIn, attempt_id: str, method: str, amount: int = 12_345) -> dict:
    session_id = f"cs_test_{next(_attempts):06d}"
    session = {"id": session_id, "object": "checkout.session", "status": "open", "livemode": False,
               "payment_status": "unpaid", "client_reference_id": attempt_id, "payment_intent": None,
               "amount_total": amount, "currency": "usd", "metadata": {"attempt_id": attempt_id},
               "_intent_metadata": {"attempt_id": attempt_id, "customer_id": "C1"}, "_method": method}
    standin.sessions[session_id] = session
    return session


def _expected(path: str, amount: int) -> tuple[str, str, int]:
    _, status, reason, refunded = PATHS[path]
    return status, reason, amount if refunded == "all" else refunded


def _order(data: st.DataObject, standin: StripeStandIn, path: str) -> list[int]:
    """Indexes into the path's events: a permutation, then up to three delivered again (Stripe retries).
    Drawn before anything runs, so every example draws the same way."""
    count = len(path_events(standin, _session(standin, "pa_count", PATHS[path][0]), path))
    return [*data.draw(st.permutations(range(count))), *data.draw(st.lists(st.integers(0, count - 1), max_size=3))]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), path=st.sampled_from(sorted(PATHS)), same_second=st.booleans())
def test_every_delivery_order_of_a_paths_events_derives_the_same_state(standin, data, path, same_second):
    method = PATHS[path][0]
    attempt_id = f"pa_pure_{next(_attempts)}"
    session = _session(standin, attempt_id, method)
    order = [path_events(standin, session, path, same_second=same_second)[i] for i in _order(data, standin, path)]
    snapshots: dict = {}
    for event in order:
        reading = read_event(event)
        assert reading is not None, event["type"]
        snapshots = merge(snapshots, [reading.snapshot])
    derived = derive(snapshots.values(), session["amount_total"], "USD")
    assert (derived.status, derived.failure_reason, derived.refunded) == _expected(path, session["amount_total"])
    assert derived.review == (path.startswith(("card_refunded", "card_partly", "card_dispute", "card_inquiry"))
                              or path == "bank_returned_after_settling")
    assert derived.intent == f"pi_test_{session['id'].rsplit('_', 1)[-1]}" or path == "card_abandoned"


# --- through the store ---------------------------------------------------------------------------------------


@pytest.fixture
def usd_invoice(store, settings, export_dir):
    import_sample(store, settings, export_dir)
    for data in store.customer_data():
        if data.customer.currency == "USD" and data.invoices:
            return data.customer.customer_id, data.invoices[0]
    raise AssertionError("no USD invoice in the sample")


def _new_attempt(store, customer_id, invoice, method, amount) -> str:
    attempt_id = f"pa_prop_{next(_attempts):06d}"
    with store.begin() as conn:
        paystore.insert_attempt(conn, {
            "attempt_id": attempt_id, "customer_id": customer_id, "status": "created", "method": method,
            "currency": "USD", "subtotal": amount, "adjustment": 0, "amount": amount, "unapplied": 0,
            "credit_applied": 0, "refunded": 0, "needs_review": False, "payer_email": "", "checkout_session": "",
            "payment_intent": "", "charge": "", "failure_reason": "", "created_at": NOW, "updated_at": NOW,
            "counted_at": None}, [{"invoice_id": invoice.invoice_id, "number": invoice.number, "amount": amount,
                                   "applied": 0}])
    return attempt_id


def _final(store, attempt_id):
    with store.begin() as conn:
        attempt = paystore.get_attempt(conn, attempt_id)
        applied = [(r.invoice_id, r.amount, r.applied) for r in paystore.allocations_of(conn, attempt_id)]
    return {**{k: getattr(attempt, k) for k in ("status", "refunded", "failure_reason", "needs_review",
                                                "payment_intent", "charge", "payer_email", "unapplied",
                                                "counted_at", "updated_at")}, "applied": applied}


def _forget(store, attempt_id, events):
    """Leave the invoice as it was for the next example (the examples share one database)."""
    with store.begin() as conn:
        for table in (paystore.payment_allocations, paystore.payment_attempts):
            conn.execute(delete(table).where(table.c.attempt_id == attempt_id))
        conn.execute(delete(paystore.stripe_snapshots))
        conn.execute(delete(paystore.stripe_events))
        conn.execute(delete(event_log).where(event_log.c.detail == attempt_id))


def _replay(store, standin, usd_invoice, path, order_of, same_second=False):
    customer_id, invoice = usd_invoice
    method = PATHS[path][0]
    attempt_id = _new_attempt(store, customer_id, invoice, method, 12_345)
    session = _session(standin, attempt_id, method)
    events = path_events(standin, session, path, same_second=same_second)
    try:
        for event in order_of(events):
            apply_event(store, event, now=NOW)
        return _final(store, attempt_id), session
    finally:
        _forget(store, attempt_id, events)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), path=st.sampled_from(sorted(PATHS)))
def test_the_stored_attempt_ends_the_same_in_every_delivery_order(store, standin, usd_invoice, data, path):
    order = _order(data, standin, path)
    in_order, session = _replay(store, standin, usd_invoice, path, list)
    shuffled, _ = _replay(store, standin, usd_invoice, path, lambda events: [events[i] for i in order])
    assert in_order["status"] == shuffled["status"] == PATHS[path][1]
    # The ids differ per replay (each has its own session): compare them by shape, the rest exactly.
    for key in ("payment_intent", "charge"):
        assert bool(in_order.pop(key)) == bool(shuffled.pop(key)), key
    assert in_order == shuffled


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_paths_events_delivered_newest_first_end_as_in_order(store, standin, usd_invoice, path):
    # The one order every path is checked in, whatever Hypothesis samples: the exact reverse.
    in_order, _ = _replay(store, standin, usd_invoice, path, list)
    reversed_, _ = _replay(store, standin, usd_invoice, path, lambda events: events[::-1])
    assert in_order["status"] == reversed_["status"] == PATHS[path][1]
    for key in ("payment_intent", "charge"):
        assert bool(in_order.pop(key)) == bool(reversed_.pop(key)), key
    assert in_order == reversed_


def test_a_refund_that_arrives_before_its_payment_waits_and_joins_it(store, standin, usd_invoice):
    customer_id, invoice = usd_invoice
    attempt_id = _new_attempt(store, customer_id, invoice, "card", 12_345)
    session = _session(standin, attempt_id, "card")
    events = path_events(standin, session, "card_refunded_in_two")
    completed, succeeded, part, full = events
    for event in (full, part):  # a charge without our metadata: nobody knows yet whose it is
        event["data"]["object"]["metadata"] = {}
        assert apply_event(store, event, now=NOW) is None
    with store.begin() as conn:
        orphans = paystore.orphans_for(conn, {full["data"]["object"]["payment_intent"]})
    assert [s.data["refunded"] for s in orphans] == [12_345]  # the newest of the two
    change = apply_event(store, completed, now=NOW)
    assert (change.old, change.new) == ("created", "refunded")
    apply_event(store, succeeded, now=NOW)
    final = _final(store, attempt_id)
    assert (final["status"], final["refunded"], final["needs_review"]) == ("refunded", 12_345, True)
    with store.begin() as conn:
        assert paystore.orphans_for(conn, {full["data"]["object"]["payment_intent"]}) == []


@pytest.mark.parametrize(("before", "path", "late", "after"), [
    ("succeeded", "bank_settles", "payment_intent.processing", "succeeded"),
    ("failed", "bank_fails", "payment_intent.processing", "failed"),
    ("processing", "bank_settles", "checkout.session.completed", "processing"),
    ("disputed", "card_dispute_won", "charge.dispute.closed", "reinstated"),
])
def test_an_attempt_moved_before_snapshots_were_kept_does_not_move_back(store, standin, usd_invoice, before, path,
                                                                          late, after):
    customer_id, invoice = usd_invoice
    method = PATHS[path][0]
    attempt_id = _new_attempt(store, customer_id, invoice, method, 12_345)
    session = _session(standin, attempt_id, method)
    number = session["id"].rsplit("_", 1)[-1]
    with store.begin() as conn:  # as the old code left it: a status and the ids its events named, no snapshots
        paystore.update_attempt(conn, attempt_id, status=before, payment_intent=f"pi_test_{number}",
                                charge=f"ch_test_{number}" if before != "processing" else "",
                                failure_reason="disputed: fraudulent" if before == "disputed" else "")
    [event] = [e for e in path_events(standin, session, path) if e["type"] == late][-1:]
    apply_event(store, event, now=NOW)
    assert _final(store, attempt_id)["status"] == after
