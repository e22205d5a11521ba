"""What staff see of autopay, through the webhook on SQLite and PostgreSQL with methods saved the way customers save
them (the Stripe stand-in's setup sessions): the customers list says who is enrolled and with what kind of method,
read in one query for the listed customers; the customer page writes its timing in English, singular or plural."""

from __future__ import annotations

import re

from sqlalchemy import event

from portal.staff.autopay_status import autopay_summary, with_autopay
from tests.autopay_helpers import enrol, turn_on
from tests.payfixtures import page_token
from tests.staff_helpers import add_staff, login


def _usd_customers(store, n: int) -> list[str]:
    found = [d.customer.customer_id for d in store.customer_data() if d.customer.currency == "USD"]
    assert len(found) >= n, "the sample has too few USD customers"
    return found[:n]


def _listed(html: str) -> dict[str, str]:
    """Customer id -> its line on the customers list, tags removed."""
    items = re.findall(r"<li>(.*?)</li>", html, flags=re.S)
    lines = {}
    for item in items:
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", item)).strip()
        ident = re.search(r"[?&]id=([^\"&]+)", item)
        if ident:
            lines[ident.group(1)] = text
    return lines


def test_the_customers_list_says_who_is_enrolled_and_with_which_kind_of_method(client, app, standin, built, store):
    by_card, by_bank, saved_only = _usd_customers(store, 3)
    card = enrol(client, standin, built, by_card, "card")
    assert turn_on(client, built, by_card, card).status_code == 200
    bank = enrol(client, standin, built, by_bank, "us_bank_account")
    assert turn_on(client, built, by_bank, bank, timing="before", days="1").status_code == 200
    enrol(client, standin, built, saved_only, "card")  # a saved card, autopay never turned on
    add_staff(store, "viewer@example.com")
    staff = app.test_client()
    login(staff, "viewer@example.com")
    every = [d.customer for d in store.customer_data()]
    for customer in every:
        lines = _listed(staff.get(f"/staff/customers?q={customer.customer_id}").get_data(as_text=True))
        want = {by_card: "autopay by card", by_bank: "autopay by bank account"}.get(customer.customer_id,
                                                                                   "no autopay")
        assert want in lines[customer.customer_id], (customer.customer_id, lines)
    # Turned off: the list says so at once.
    assert client.post("/autopay", data={"page_token": page_token(built, by_card), "action": "off"}
                       ).status_code == 200
    lines = _listed(staff.get(f"/staff/customers?q={by_card}").get_data(as_text=True))
    assert "no autopay" in lines[by_card]


def test_the_autopay_column_is_one_query_for_every_listed_customer(client, standin, built, store):
    by_card, by_bank = _usd_customers(store, 2)
    assert turn_on(client, built, by_card, enrol(client, standin, built, by_card, "card")).status_code == 200
    assert turn_on(client, built, by_bank, enrol(client, standin, built, by_bank, "us_bank_account")).status_code == 200
    rows = [{"customer_id": d.customer.customer_id} for d in store.customer_data()]
    statements = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        listed = with_autopay(store, rows)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) == 1 and len(rows) > 2
    assert {r["customer_id"]: r["autopay"] for r in listed if r["autopay"]} == {by_card: "card",
                                                                               by_bank: "bank account"}


def test_the_staff_autopay_timing_says_one_day_or_n_days(client, standin, built, store):
    customer_id = _usd_customers(store, 1)[0]
    method = enrol(client, standin, built, customer_id, "card")
    for days, words in (("1", "1 day before the due date"), ("3", "3 days before the due date")):
        assert turn_on(client, built, customer_id, method, timing="before", days=days).status_code == 200
        assert autopay_summary(store, customer_id, "USD")["timing"] == words
    assert turn_on(client, built, customer_id, method).status_code == 200
    assert autopay_summary(store, customer_id, "USD")["timing"] == "on the due date"
