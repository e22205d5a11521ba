"""Promises to pay on SQLite and PostgreSQL: what may be promised and by whom, what pauses reminders, and how a
promise is judged kept or broken from what the balances rule says arrived."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.collect.access import CollectRefused
from portal.collect.promises import (
    Offer,
    customer_promises,
    log_touch_with_promise,
    promise_from_customer,
    settle_promises,
)
from portal.collect.touches import customer_touches
from portal.store.collect import promise_invoices, promised_invoices, promises, touches
from tests.collect_helpers import CARA, NOW, TODAY, VIV, settling_bank_payment
from tests.payfixtures import row_count
from tests.smtpserver import changed

# mail_ledger: C1's invoices I-SOON 100.00, I-LATER 200.00, I-OD5 300.00, I-OD20 400.00, ...; C2's I-B1 50.00.


def _promise(store, invoice_ids=("I-OD5",), amount="300.00", day=TODAY + timedelta(days=7), now=NOW, **kw):
    return log_touch_with_promise(store, CARA, "C1", "call", Offer(tuple(invoice_ids), amount, day.isoformat()),
                                  outcome="reached", now=now, **kw)


def test_a_call_with_a_promise_records_both_and_pauses_reminders_until_the_day(store, ledger):
    promise_id = _promise(store, ["I-OD5", "I-OD20"], "550.00", body="Will pay after the board meets")
    [row] = customer_promises(store, "C1")
    assert (row["promise_id"], row["amount"], row["currency"], row["status"]) == (promise_id, 55000, "USD", "open")
    assert row["made_by"] == CARA.email and row["collector"] == CARA.email and row["source"] == "collector"
    assert row["invoices"] == ["INV-OD20<i>", "INV-OD5<i>"]
    kinds = [t["kind"] for t in customer_touches(store, CARA, "C1", private_notes=False)]
    assert sorted(kinds) == ["call", "promise"]
    with store.begin() as conn:
        assert promised_invoices(conn, TODAY + timedelta(days=7)) == {"I-OD5": TODAY + timedelta(days=7),
                                                                       "I-OD20": TODAY + timedelta(days=7)}
        assert promised_invoices(conn, TODAY + timedelta(days=8)) == {}  # the day passed: chased again


@pytest.mark.parametrize("invoice_ids, amount, day, says", [
    (["I-B1"], "10.00", 7, "not an invoice of customer 'C1'"),
    ([], "10.00", 7, "choose the invoices"),
    (["I-OD5"], "300.01", 7, "at most $300.00"),
    (["I-OD5"], "0", 7, "more than zero"),
    (["I-OD5"], "12,50.5.0", 7, "is not a number"),
    (["I-OD5"], "10.00", -1, "has passed"),
    (["I-OD5"], "10.00", 367, "at the latest"),
])
def test_a_refused_promise_writes_neither_the_call_nor_the_promise(store, ledger, invoice_ids, amount, day, says):
    with pytest.raises(CollectRefused) as refused:
        _promise(store, invoice_ids, amount, TODAY + timedelta(days=day))
    assert says in refused.value.message
    assert row_count(store, promises) == row_count(store, promise_invoices) == row_count(store, touches) == 0


def test_a_viewer_cannot_take_a_promise(store, ledger):
    with pytest.raises(CollectRefused):
        log_touch_with_promise(store, VIV, "C1", "call", Offer(("I-OD5",), "1", TODAY.isoformat()), outcome="reached")
    assert row_count(store, promises) == 0


def test_a_german_customers_promise_is_read_and_refused_in_german(store, ledger, settings):
    """A promise typed on a German page ("1.234,50") is read as the pay form reads amounts, and a refusal is
    said in the customer's words with the amount in their format."""
    from portal.core.i18n import translations_for
    from portal.store.tables import customers

    with store.begin() as conn:
        conn.execute(customers.update().where(customers.c.customer_id == "C1").values(locale="de_DE"))
    day = (TODAY + timedelta(days=7)).isoformat()
    with pytest.raises(CollectRefused) as refused:
        promise_from_customer(store, settings, "C1", Offer(("I-OD5",), "300,01", day), now=NOW)
    german = refused.value.text(translations_for("de_DE"))
    assert "höchstens 300,00" in german and "$" in german, german
    assert row_count(store, promises) == 0
    promise_from_customer(store, settings, "C1", Offer(("I-OD5", "I-OD20"), "550,50", day), now=NOW)
    [row] = customer_promises(store, "C1")
    assert (row["amount"], row["currency"]) == (55050, "USD")


def test_a_customers_promise_stays_within_the_teams_limits(store, ledger, settings):
    limits = settings.replace(promise_max_days=10, promise_min_percent=50)

    def offer(amount, days, ids=("I-OD5", "I-OD20")):
        return Offer(ids, amount, (TODAY + timedelta(days=days)).isoformat())

    for bad, says in [(offer("350.00", 11), "2026-12-11 at the latest"), (offer("349.99", 5), "at least 50%")]:
        with pytest.raises(CollectRefused) as refused:
            promise_from_customer(store, limits, "C1", bad, now=NOW)
        assert says in refused.value.message
    assert row_count(store, promises) == 0
    promise_from_customer(store, limits, "C1", offer("350.00", 10), now=NOW)
    [row] = customer_promises(store, "C1")
    assert row["source"] == "customer" and row["collector"] == "cara@supplier.example"  # reaches the collector
    # A customer cannot replace an open promise; a collector can, and the old one shows as replaced.
    with pytest.raises(CollectRefused, match="already have a promise"):
        promise_from_customer(store, limits, "C1", offer("400.00", 9, ("I-OD20",)), now=NOW)
    _promise(store, ["I-OD20"], "400.00")
    assert [r["status"] for r in customer_promises(store, "C1")] == ["open", "cancelled"]


def test_a_promise_is_kept_when_the_money_arrives_and_broken_after_the_grace_days(store, ledger, settings):
    kept_id = _promise(store, ["I-OD5"], "300.00", TODAY + timedelta(days=3))
    broken_id = _promise(store, ["I-OD20"], "400.00", TODAY + timedelta(days=3))
    partly = changed(changed(ledger, "I-OD5", balance=0), "I-OD20", balance=10000)  # the ERP booked payments
    store.import_snapshot(partly)
    grace = settings.replace(promise_grace_days=2)
    assert settle_promises(store, grace, NOW + timedelta(days=1)) == {kept_id: "kept"}
    still_open = {r["promise_id"]: r for r in customer_promises(store, "C1")}[broken_id]
    assert (still_open["status"], still_open["arrived"]) == ("open", 30000)  # what arrived so far, shown already
    # 300.00 of 400.00 arrived: still open through the day and its grace days, broken the day after.
    assert settle_promises(store, grace, NOW + timedelta(days=5)) == {}
    assert settle_promises(store, grace, NOW + timedelta(days=6)) == {broken_id: "broken"}
    assert settle_promises(store, grace, NOW + timedelta(days=7)) == {}  # judged once
    by_id = {r["promise_id"]: r for r in customer_promises(store, "C1")}
    assert by_id[kept_id]["arrived"] == 30000 and by_id[broken_id]["arrived"] == 30000
    kinds = [t["kind"] for t in customer_touches(store, CARA, "C1", private_notes=False)]
    assert kinds.count("promise_kept") == 1 and kinds.count("promise_broken") == 1


def test_a_bank_payment_still_settling_has_not_arrived(store, ledger, settings):
    promise_id = _promise(store, ["I-OD5"], "300.00", TODAY)
    settling_bank_payment(store)
    assert settle_promises(store, settings, NOW + timedelta(days=10)) == {promise_id: "broken"}
