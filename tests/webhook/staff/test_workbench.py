"""/staff workbench forms through the Flask app, on SQLite and PostgreSQL: a collector logs a call and places a
hold from the customer page; what they typed is escaped; a viewer, a missing CSRF token and another customer's
invoice are refused with nothing recorded; a collector sees their own portfolio first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal.store import tables
from portal.store.collect import holds, touches
from tests.staff_helpers import add_staff, csrf, login
from tests.webhook_helpers import import_sample, make_app

EVIL = "<script>alert(1)</script> & Co"
CARA, VIV, MIA = "cara@example.com", "viv@example.com", "mia@example.com"


@pytest.fixture
def ledger(store, settings, export_dir):
    ledger = import_sample(store, settings, export_dir)
    first, second = sorted(ledger.customers)[:2]
    with store.begin() as conn:  # Cara collects the first customer only
        conn.execute(update(tables.customers).values(collector=""))
        conn.execute(update(tables.customers).where(tables.customers.c.customer_id == first).values(collector=CARA))
    return ledger


@pytest.fixture
def app(settings, tmp_path, ledger, store):
    add_staff(store, CARA, "collector")
    add_staff(store, VIV, "viewer")
    add_staff(store, MIA, "manager")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        yield app


def _client(app, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _customers(ledger):
    first, second = sorted(ledger.customers)[:2]
    own = sorted(i.invoice_id for i in ledger.invoices.values() if i.customer_id == first)
    other = sorted(i.invoice_id for i in ledger.invoices.values() if i.customer_id == second)
    return first, second, own, other


def _count(store, table) -> int:
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_collector_logs_a_call_from_the_customer_page_and_the_team_sees_it_escaped(app, store, ledger):
    cara = _client(app, CARA)
    first, _, own, _ = _customers(ledger)
    page = cara.get(f"/staff/customer?id={first}").get_data(as_text=True)
    assert "Log a touch" in page and 'value="call" checked' in page  # two clicks: an outcome, then "Log it"
    posted = cara.post("/staff/customer/touch", data={
        "csrf_token": csrf(cara), "customer_id": first, "kind": "call", "outcome": "reached", "body": EVIL,
        "invoice": own[:1]})
    assert posted.status_code == 302 and posted.headers["Location"].endswith(f"/staff/customer?id={first}#workbench")
    seen = _client(app, MIA).get(f"/staff/customer?id={first}").get_data(as_text=True)
    assert "Call: reached" in seen and CARA in seen
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in seen and "<script>alert(1)" not in seen


def test_a_viewer_reads_but_cannot_log_or_hold(app, store, ledger):
    viv = _client(app, VIV)
    first, _, _, _ = _customers(ledger)
    assert "Log a touch" not in viv.get(f"/staff/customer?id={first}").get_data(as_text=True)
    token = csrf(viv)
    assert viv.post("/staff/customer/touch", data={"csrf_token": token, "customer_id": first, "kind": "note",
                                                   "body": "hi"}).status_code == 403
    assert viv.post("/staff/customer/hold", data={"csrf_token": token, "customer_id": first, "reason": "x",
                                                  "until": "2099-01-01"}).status_code == 403
    assert _count(store, touches) == 0 and _count(store, holds) == 0


def test_workbench_posts_without_the_csrf_token_or_from_another_origin_record_nothing(app, store, ledger):
    cara = _client(app, CARA)
    first, _, _, _ = _customers(ledger)
    note = {"customer_id": first, "kind": "note", "body": "hi"}
    assert cara.post("/staff/customer/touch", data=note).status_code == 403
    assert cara.post("/staff/customer/touch", data={**note, "csrf_token": "forged"}).status_code == 403
    assert cara.post("/staff/customer/touch", data={**note, "csrf_token": csrf(cara)},
                     headers={"Origin": "https://evil.example"}).status_code == 403
    assert cara.post("/staff/customer/hold/release", data={"customer_id": first}).status_code == 403
    assert _count(store, touches) == 0


def test_another_customers_invoice_is_refused_with_a_message(app, store, ledger):
    cara = _client(app, CARA)
    first, _, _, other = _customers(ledger)
    refused = cara.post("/staff/customer/touch", data={"csrf_token": csrf(cara), "customer_id": first,
                                                       "kind": "call", "outcome": "reached", "invoice": other[:1]})
    assert refused.status_code == 400
    assert "is not an invoice of customer" in refused.get_data(as_text=True)
    assert _count(store, touches) == 0


def test_a_hold_shows_on_the_customer_page_and_on_the_lists(app, store, ledger):
    cara = _client(app, CARA)
    first, _, _, _ = _customers(ledger)
    until = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()
    bad = cara.post("/staff/customer/hold", data={"csrf_token": csrf(cara), "customer_id": first,
                                                  "reason": "Talks", "until": "5 Dec"})
    assert bad.status_code == 400 and "is not a date (YYYY-MM-DD)" in bad.get_data(as_text=True)
    assert cara.post("/staff/customer/hold", data={"csrf_token": csrf(cara), "customer_id": first,
                                                   "reason": EVIL, "until": until}).status_code == 302
    page = cara.get(f"/staff/customer?id={first}").get_data(as_text=True)
    assert f"On hold until {until}" in page and "&lt;script&gt;" in page and "<script>alert" not in page
    # A collector's customers page lists their own portfolio by default, with the hold.
    mine = cara.get("/staff/customers").get_data(as_text=True)
    assert f"Portfolio of {CARA}" in mine and f"on hold until {until}" in mine
    # A manager sees no portfolio by default, any collector's on asking; search results show the hold too.
    mia = _client(app, MIA)
    assert "Portfolio of" not in mia.get("/staff/customers").get_data(as_text=True)
    assert f"Portfolio of {CARA}" in mia.get(f"/staff/customers?collector={CARA}").get_data(as_text=True)
    assert f"on hold until {until}" in mia.get(f"/staff/customers?q={first}").get_data(as_text=True)
    released = mia.post("/staff/customer/hold/release", data={"csrf_token": csrf(mia), "customer_id": first})
    assert released.status_code == 302
    assert "On hold until" not in cara.get(f"/staff/customer?id={first}").get_data(as_text=True)


def test_a_call_with_a_promise_from_the_customer_page_shows_in_the_promises(app, store, ledger):
    cara = _client(app, CARA)
    first, _, own, other = _customers(ledger)
    day = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    call = {"csrf_token": csrf(cara), "customer_id": first, "kind": "call", "outcome": "reached",
            "promise_amount": "1.00", "promise_date": day}
    refused = cara.post("/staff/customer/touch", data={**call, "invoice": other[:1]})
    assert refused.status_code == 400 and _count(store, touches) == 0  # neither the call nor the promise
    missing = cara.post("/staff/customer/touch", data={**call, "invoice": own[:1], "promise_date": ""})
    assert missing.status_code == 400 and "is not a date" in missing.get_data(as_text=True)
    assert cara.post("/staff/customer/touch", data={**call, "invoice": own[:1]}).status_code == 302
    page = cara.get(f"/staff/customer?id={first}").get_data(as_text=True)
    assert "Promises to pay" in page and f"{day}</td>" in page and "Promise to pay" in page


def test_a_question_shows_its_text_and_contact_and_is_answered_from_the_dashboard(app, store, ledger, tmp_path):
    from portal.disputes.service import submit_question
    from tests.webhook_helpers import outbox_messages

    first, _, _, _ = _customers(ledger)
    contact = next(c for c in ledger.contacts if c.customer_id == first)
    asked = submit_question(store, first, "", f"Is this right? {EVIL}", email=contact.email)
    qid = int(asked.reference.removeprefix("Q-"))
    viv = _client(app, VIV)
    seen = viv.get(f"/staff/customer?id={first}").get_data(as_text=True)
    assert "Is this right? &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in seen and "<script>alert" not in seen
    assert f"&lt;{contact.email}&gt;" in seen and "Send the answer" not in seen  # a viewer reads only
    assert viv.post(f"/staff/questions/{qid}/answer", data={"csrf_token": csrf(viv), "answer": "x"}).status_code == 403
    cara = _client(app, CARA)
    assert cara.post(f"/staff/questions/{qid}/answer", data={"answer": "x"}).status_code == 403  # no CSRF token
    assert outbox_messages(tmp_path) == []
    answered = cara.post(f"/staff/questions/{qid}/answer", data={"csrf_token": csrf(cara), "customer_id": first,
                                                                 "answer": f"Yes {EVIL}"})
    assert answered.status_code == 302 and answered.headers["Location"].endswith("#questions")
    [message] = outbox_messages(tmp_path)
    assert message["To"].addresses[0].addr_spec == contact.email and message["Reply-To"] == CARA
    page = cara.get(f"/staff/customer?id={first}").get_data(as_text=True)
    assert f"Answered by {CARA}" in page and "Yes &lt;script&gt;" in page and "Question answered" in page


def test_the_worklist_view_snooze_and_reassign_with_roles_and_csrf(app, store, ledger):
    from portal.disputes.service import submit_question

    first, second, _, _ = _customers(ledger)
    submit_question(store, first, "", f"Question {EVIL}")
    cara = _client(app, CARA)
    mine = cara.get("/staff/worklist").get_data(as_text=True)
    assert f"Worklist of {CARA}" in mine and "Dispute or question unanswered" in mine
    assert "Reassign" not in mine  # a collector cannot reassign
    assert cara.post("/staff/customer/assign", data={"csrf_token": csrf(cara), "customer_id": first,
                                                     "collector": "x@example.com"}).status_code == 403
    assert cara.post("/staff/worklist/snooze", data={"customer_id": first, "reason": "unanswered",
                                                     "until": "2099-01-01"}).status_code == 403  # no CSRF token
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    snoozed = cara.post("/staff/worklist/snooze", data={"csrf_token": csrf(cara), "customer_id": first,
                                                        "reason": "unanswered", "until": tomorrow,
                                                        "back": "https://evil.example/"})
    assert snoozed.status_code == 302 and snoozed.headers["Location"] == "/staff/worklist"  # never off-site
    assert "1 snoozed" in cara.get("/staff/worklist").get_data(as_text=True)
    mia = _client(app, MIA)
    team = mia.get("/staff/worklist").get_data(as_text=True)
    assert "The team's worklist" in team and 'action="/staff/customer/assign"' in team
    assert mia.post("/staff/customer/assign", data={"csrf_token": csrf(mia), "customer_id": second,
                                                    "collector": CARA}).status_code == 302
    assert second in cara.get("/staff/customers").get_data(as_text=True)  # now in Cara's portfolio
    assert _client(app, VIV).post("/staff/worklist/snooze", data={
        "csrf_token": csrf(_client(app, VIV)), "customer_id": first, "reason": "unanswered",
        "until": tomorrow}).status_code == 403


def test_the_worklist_pages_and_counts_by_reason(app, store, ledger, monkeypatch):
    from portal.collect import worklist
    from portal.disputes.service import submit_question

    first, *_ = _customers(ledger)
    for n in range(3):
        submit_question(store, first, "", f"Question {n}")
    monkeypatch.setattr(worklist, "PER_PAGE", 2)  # two items a page
    cara = _client(app, CARA)
    one = cara.get("/staff/worklist").get_data(as_text=True)
    assert "To do, by reason" in one and "page 1 of 2" in one and 'rel="next"' in one
    assert one.count("question Q-") == 2
    two = cara.get("/staff/worklist?page=2").get_data(as_text=True)
    assert "page 2 of 2" in two and two.count("question Q-") == 1 and 'rel="prev"' in two
    bad = cara.get("/staff/worklist?page=x")
    assert bad.status_code == 400 and "Page" in bad.get_data(as_text=True)


def test_the_activity_page_and_its_csv(app, store, ledger):
    from portal.collect.access import Actor
    from portal.collect.touches import log_touch

    first, _, _, _ = _customers(ledger)
    log_touch(store, Actor(CARA, "collector"), first, "call", outcome="reached")
    cara = _client(app, CARA)
    own = cara.get("/staff/activity").get_data(as_text=True)
    assert f'<th scope="row">{CARA}</th>' in own and "(team)" not in own  # a collector's own figures first
    assert 'aria-labelledby="by-hour-title by-hour-desc"' in own and "What each figure means" in own
    mia = _client(app, MIA)
    team = mia.get("/staff/activity?period=day").get_data(as_text=True)
    assert '<th scope="row">(team)</th>' in team
    assert mia.get("/staff/activity?period=year").status_code == 400
    hostile = mia.get(f"/staff/activity?collector={EVIL}").get_data(as_text=True)
    assert "<script>alert" not in hostile and "&lt;script&gt;" in hostile
    exported = mia.get("/staff/activity.csv?period=day")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert exported.get_data(as_text=True).startswith("collector,period,start,calls")
