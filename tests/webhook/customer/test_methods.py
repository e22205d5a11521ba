"""/methods/setup, /methods/remove, /autopay and the setup events: every form binds the customer, another customer's
method is refused, tampered and revoked tokens record nothing, and setup events are verified and idempotent."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from portal.core.i18n import translations_for
from portal.core.signing import Signer
from portal.store import autopay as apstore
from portal.store.tables import events as event_log
from tests.autopay_helpers import deliver, enrol, turn_on
from tests.payfixtures import page_token, send_event, stripe_event, stripe_signature, usd_customer


def _two_usd_customers(store):
    first, _ = usd_customer(store)
    other = next(d.customer.customer_id for d in store.customer_data()
                 if d.customer.currency == "USD" and d.customer.customer_id != first)
    return first, other


def _rows(store, table):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_another_customers_method_is_refused_and_nothing_changes(client, standin, built, store):
    owner, intruder = _two_usd_customers(store)
    method_id = enrol(client, standin, built, owner, "card")
    assert turn_on(client, built, owner, method_id).status_code == 200
    calls = len(standin.requests)

    removed = client.post("/methods/remove", data={"page_token": page_token(built, intruder), "method": method_id})
    assert removed.status_code == 400
    assert "not saved on your account" in removed.get_data(as_text=True)
    chosen = turn_on(client, built, intruder, method_id)
    assert chosen.status_code == 400
    assert len(standin.requests) == calls  # Stripe was never asked to detach it
    with store.begin() as conn:
        assert [m.method_id for m in apstore.methods_of(conn, owner)] == [method_id]
        assert apstore.choice(conn, owner).enabled is True
        assert apstore.choice(conn, intruder) is None


@pytest.mark.parametrize("route", ["/methods/setup", "/methods/remove", "/autopay"])
def test_tampered_token_records_nothing(client, standin, built, store, route):
    customer_id, _ = usd_customer(store)
    token = page_token(built, customer_id)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    answer = client.post(route, data={"page_token": tampered, "kind": "card", "method": "pm_x", "timing": "due",
                                      "action": "on"})
    assert answer.status_code == 404
    assert standin.requests == []
    for table in (apstore.stripe_customers, apstore.saved_methods, apstore.autopay_settings):
        assert _rows(store, table) == 0


def test_revoked_page_token_records_nothing(client, standin, built, store):
    customer_id, _ = usd_customer(store)
    old = page_token(built, customer_id)
    store.revoke(customer_id)
    assert client.post("/methods/setup", data={"page_token": old, "kind": "card"}).status_code == 404
    assert standin.requests == []


def test_setup_events_are_idempotent_and_only_for_our_customers(client, standin, built, store):
    customer_id, _ = usd_customer(store)
    client.post("/methods/setup", data={"page_token": page_token(built, customer_id), "kind": "card"})
    session = next(iter(standin.sessions.values()))
    events = [standin.event(kind, obj) for kind, obj in standin.complete_setup(session)]
    for event in events + events:  # every event twice
        payload = json.dumps(event)
        assert client.post("/stripe/events", data=payload, headers={
            "Stripe-Signature": stripe_signature(payload), "Content-Type": "application/json"}).status_code == 200
    assert _rows(store, apstore.saved_methods) == 1
    with store.begin() as conn:  # each effect once: the duplicates were recognised by their event ids
        logged = conn.execute(select(func.count()).select_from(event_log).where(
            event_log.c.kind == "method_setup_completed")).scalar_one()
    assert logged == 1
    # A method attached to a Stripe Customer this portal did not create belongs to someone else: ignored.
    stranger = {"id": "pm_stranger", "object": "payment_method", "type": "card", "customer": "cus_not_ours",
                "card": {"brand": "visa", "last4": "1111"}, "livemode": False}
    assert send_event(client, stripe_event("payment_method.attached", stranger)).status_code == 200
    # Metadata naming another portal customer than the Stripe Customer's own is not believed.
    other = next(d.customer.customer_id for d in store.customer_data() if d.customer.customer_id != customer_id)
    forged = {"id": "seti_forged", "object": "setup_intent", "status": "succeeded", "payment_method": "pm_forged",
              "customer": session["customer"], "payment_method_types": ["card"], "metadata": {"customer_id": other},
              "livemode": False}
    assert send_event(client, stripe_event("setup_intent.succeeded", forged)).status_code == 200
    assert _rows(store, apstore.saved_methods) == 1


def test_unsigned_setup_event_is_refused(client, standin, built, store):
    customer_id, _ = usd_customer(store)
    payload = json.dumps(stripe_event("payment_method.attached", {"id": "pm_x", "object": "payment_method",
                                                                  "type": "card", "customer": "cus_x"}))
    answer = client.post("/stripe/events", data=payload, headers={"Stripe-Signature": "t=1,v1=00",
                                                                  "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert _rows(store, apstore.saved_methods) == 0


def test_a_removed_method_is_not_brought_back_by_a_late_event(client, standin, built, store):
    customer_id, _ = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    assert deliver(client, standin, *standin.detached_event(method_id)).status_code == 200
    late = {**standin._public(standin.payment_methods[method_id]), "customer": standin.customers and next(
        iter(standin.customers))}
    assert deliver(client, standin, "payment_method.attached", late).status_code == 200
    with store.begin() as conn:
        assert apstore.methods_of(conn, customer_id) == []


def test_one_stripe_customer_per_portal_customer(client, standin, built, store):
    customer_id, _ = usd_customer(store)
    for kind in ("card", "us_bank_account", "card"):
        assert client.post("/methods/setup", data={"page_token": page_token(built, customer_id), "kind": kind}
                           ).status_code == 303
    assert len(standin.customers) == 1
    assert len([r for r in standin.requests if r.path == "/v1/customers"]) == 1  # the stored id is used, not re-asked
    assert {r.param("customer") for r in standin.creates()} == set(standin.customers)


def test_bank_account_is_not_offered_for_other_currencies(client, standin, built, store):
    foreign = next((d.customer.customer_id for d in store.customer_data() if d.customer.currency != "USD"), None)
    if foreign is None:
        pytest.fail("the sample has no customer outside USD")
    method_id = enrol(client, standin, built, foreign, "us_bank_account")
    answer = turn_on(client, built, foreign, method_id)
    # Said in the customer's language (the sample's non-USD customer is not English-speaking).
    refusal = translations_for(store.customer_locale(foreign)).gettext(
        "A US bank account can pay invoices in US dollars only.")
    assert answer.status_code == 400 and refusal in answer.get_data(as_text=True)


def test_autopay_choice_is_checked(client, standin, built, store):
    customer_id, _ = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    assert turn_on(client, built, customer_id, method_id, timing="before", days="45").status_code == 400
    assert turn_on(client, built, customer_id, method_id, cap="12,50").status_code == 400
    assert turn_on(client, built, customer_id, method_id, timing="before", days="5", cap="100.00").status_code == 200
    with store.begin() as conn:
        choice = apstore.choice(conn, customer_id)
    assert (choice.enabled, choice.days_before, choice.cap) == (True, 5, 10000)
    off = client.post("/autopay", data={"page_token": page_token(built, customer_id), "action": "off"})
    assert off.status_code == 200
    with store.begin() as conn:
        assert apstore.choice(conn, customer_id).enabled is False


def test_page_lists_saved_methods_with_customer_bound_forms(client, standin, built, store, app):
    from portal.build.customer import render_customer
    from portal.build.pages import PageRenderer

    customer_id, _ = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "us_bank_account")
    rendered = render_customer(PageRenderer(built), store, customer_id)
    page = next(o for o in rendered.outputs if o.path.endswith("/index.html")).data.decode()
    assert method_id in page and "STRIPE TEST BANK" in page and "ending in 6789" in page
    assert 'id="mandate-text"' in page and "authorise" in page
    assert f'value="{Signer(built).page_token("page", customer_id, 1)}"' in page


def test_staff_see_who_is_enrolled(client, standin, built, store):
    from tests.staff_helpers import add_staff, login

    customer_id, _ = usd_customer(store)
    method_id = enrol(client, standin, built, customer_id, "card")
    add_staff(store, "ar@example.com")
    login(client, "ar@example.com")
    before = client.get(f"/staff/customer?id={customer_id}").get_data(as_text=True)
    assert "not enrolled" in before
    turn_on(client, built, customer_id, method_id, cap="250.00")
    after = client.get(f"/staff/customer?id={customer_id}").get_data(as_text=True)
    assert "<strong>enrolled</strong>: card visa ····4242, on the due date, $250.00" in after
