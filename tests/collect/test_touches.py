"""Touches and holds in the store, on SQLite and PostgreSQL: what is recorded, for whom, who may read a note,
and what is refused with nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.collect.access import CollectRefused
from portal.collect.holds import current_holds, place_hold, release_hold
from portal.collect.portfolio import portfolio
from portal.collect.touches import customer_touches, log_touch
from portal.mail.sending import send_invoices
from portal.store.collect import holds, touch_invoices, touches
from tests.collect_helpers import CARA, DAN, MIA, NOW, TODAY, VIV
from tests.payfixtures import row_count
from tests.smtpserver import running_smtp


def test_a_call_is_recorded_with_its_outcome_invoices_and_collector(store, ledger):
    touch_id = log_touch(store, DAN, "C1", "call", outcome="voicemail", body="Left a message for Ann",
                         invoice_ids=["I-OD5", "I-OD20"], now=NOW)
    [row] = customer_touches(store, CARA, "C1", private_notes=False)
    assert row["touch_id"] == touch_id and row["kind"] == "call" and row["outcome"] == "voicemail"
    assert row["collector"] == DAN.email and row["created_by"] == DAN.email  # counts for who made the call
    assert row["invoices"] == ["INV-OD20<i>", "INV-OD5<i>"] and row["label"] == "Call: left a voicemail"


@pytest.mark.parametrize("kwargs, says", [
    ({"kind": "call", "invoice_ids": ["I-B1"]}, "not an invoice of customer 'C1'"),  # C2's invoice
    ({"kind": "call", "outcome": "shouted"}, "call outcome 'shouted'"),
    ({"kind": "call", "outcome": ""}, "call outcome ''"),
    ({"kind": "fax"}, "kind 'fax'"),
    ({"kind": "note", "body": "   "}, "a note needs some text"),
    ({"kind": "note", "body": "x" * 5001}, "at most 5000"),
])
def test_a_refused_touch_writes_nothing(store, ledger, kwargs, says):
    kwargs = {"outcome": "reached", **kwargs}
    with pytest.raises(CollectRefused) as refused:
        log_touch(store, CARA, "C1", kwargs.pop("kind"), **kwargs)
    assert says in refused.value.message
    assert row_count(store, touches) == 0 and row_count(store, touch_invoices) == 0


def test_a_viewer_and_an_unknown_customer_are_refused(store, ledger):
    with pytest.raises(CollectRefused) as refused:
        log_touch(store, VIV, "C1", "note", body="hi")
    assert refused.value.status == 403
    with pytest.raises(CollectRefused) as refused:
        log_touch(store, CARA, "NOPE", "note", body="hi")
    assert refused.value.status == 404
    with pytest.raises(CollectRefused):
        place_hold(store, VIV, "C1", "talks", TODAY)
    assert row_count(store, touches) == 0 and row_count(store, holds) == 0


def test_private_notes_hide_another_collectors_notes_but_not_from_managers(store, ledger):
    log_touch(store, CARA, "C1", "note", body="Cara's note", now=NOW)
    log_touch(store, DAN, "C1", "note", body="Dan's note", now=NOW + timedelta(minutes=1))
    log_touch(store, DAN, "C1", "call", outcome="reached", now=NOW + timedelta(minutes=2))

    def bodies(actor, private):
        return [(t["kind"], t["body"]) for t in customer_touches(store, actor, "C1", private_notes=private)]

    everything = [("call", ""), ("note", "Dan's note"), ("note", "Cara's note")]
    assert bodies(CARA, False) == everything  # shared with the team by default
    assert bodies(CARA, True) == [("call", ""), ("note", "Cara's note")]  # a call is no note: still shown
    assert bodies(MIA, True) == everything


def test_the_portals_emails_are_touches_of_the_customers_collector(store, ledger, settings):
    for smtp in running_smtp():
        assert send_invoices(settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0), store, now=NOW).ok
    found = customer_touches(store, MIA, "C1", private_notes=False)
    portal = [t for t in found if t["kind"] == "portal_email"]
    # One touch per message (per contact), not one per invoice: C1's invoice email goes to billing and approver.
    assert sorted(t["contact_id"] for t in portal) == ["k1", "k2"]
    for touch in portal:
        assert touch["collector"] == "cara@supplier.example" and touch["created_by"] == ""
        assert touch["body"].startswith("invoices ") and len(touch["invoices"]) == 6
    [c2] = [t for t in customer_touches(store, MIA, "C2", private_notes=False)]
    assert c2["collector"] == ""  # C2 has no collector: nobody's touch


def test_a_hold_lasts_through_its_last_day_and_a_new_one_replaces_it(store, ledger):
    place_hold(store, CARA, "C1", "Negotiating a settlement", TODAY + timedelta(days=3), now=NOW)
    assert current_holds(store, ["C1", "C2"], TODAY + timedelta(days=3))["C1"]["reason"] == "Negotiating a settlement"
    assert current_holds(store, ["C1"], TODAY + timedelta(days=4)) == {}
    place_hold(store, DAN, "C1", "Bankruptcy filing", TODAY + timedelta(days=30), now=NOW + timedelta(hours=1))
    assert row_count(store, holds) == 2
    assert current_holds(store, ["C1"], TODAY)["C1"]["placed_by"] == DAN.email  # one current hold only
    assert release_hold(store, CARA, "C1", now=NOW + timedelta(hours=2)) is True
    assert current_holds(store, ["C1"], TODAY) == {}
    assert release_hold(store, CARA, "C1", now=NOW + timedelta(hours=3)) is False
    kinds = [t["kind"] for t in customer_touches(store, MIA, "C1", private_notes=False)]
    assert kinds == ["hold_released", "hold", "hold"]  # on the team's timeline


@pytest.mark.parametrize("reason, until, says", [
    ("", TODAY + timedelta(days=1), "say why"),
    ("talks", TODAY - timedelta(days=1), "has passed"),
    ("talks", TODAY + timedelta(days=400), "at most 366 days"),
])
def test_a_refused_hold_writes_nothing(store, ledger, reason, until, says):
    with pytest.raises(CollectRefused) as refused:
        place_hold(store, CARA, "C1", reason, until, now=NOW)
    assert says in refused.value.message
    assert row_count(store, holds) == 0 and row_count(store, touches) == 0


def test_a_portfolio_lists_the_collectors_customers_with_their_holds(store, ledger):
    place_hold(store, CARA, "C1", "talks", TODAY + timedelta(days=2), now=NOW)
    [row] = portfolio(store, "Cara@Supplier.example", TODAY)
    assert row["customer_id"] == "C1" and row["hold"]["reason"] == "talks"
    assert portfolio(store, DAN.email, TODAY) == []
