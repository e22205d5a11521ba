"""Answering questions from the dashboard, on SQLite and PostgreSQL, through a real SMTP server: the answer goes to
the contact who asked (or the billing contacts on file), with Reply-To the collector; it is kept as a touch; a
question is answered once; nothing is recorded when the message did not leave."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.collect.access import Actor, CollectRefused
from portal.collect.answers import answer_question, customer_questions
from portal.collect.touches import customer_touches
from portal.disputes.errors import DisputeRefused
from portal.disputes.service import submit_question
from portal.store.collect import question_answers, touches
from tests.collect_helpers import CARA, NOW
from tests.smtpserver import EVIL_NAME, running_smtp

EVIL = "<script>alert(1)</script> & Co"


@pytest.fixture
def smtp():
    yield from running_smtp()


@pytest.fixture
def mail_settings(settings, smtp):
    return settings.replace(mail_url=smtp.url, mail_retry_delay_ms=0)


def _qid(submitted) -> int:
    return int(submitted.reference.removeprefix("Q-"))


def _count(store, table) -> int:
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_answer_goes_to_the_contact_who_asked_with_reply_to_the_collector(mail_settings, store, ledger, smtp):
    asked = submit_question(store, "C1", "I-OD5", f"Why is this {EVIL}?", now=NOW, email=" PAT@c1.example ")
    [shown] = customer_questions(store, "C1")
    assert shown["contact_email"] == "pat@c1.example" and shown["number"] == "INV-OD5<i>" and shown["answer"] is None
    sent = answer_question(store, mail_settings, CARA, _qid(asked), f"Because {EVIL}.", now=NOW)
    assert sent == ["pat@c1.example"]
    [(recipients, message)] = smtp.recorder.messages
    assert recipients == ["pat@c1.example"] and message["Reply-To"] == CARA.email
    html = message.get_body(("html",)).get_content()
    assert "Because &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co." in html and "<script>" not in html
    assert f"Because {EVIL}." in message.get_body(("plain",)).get_content()
    [answered] = customer_questions(store, "C1")
    assert answered["answer"] == f"Because {EVIL}." and answered["answered_by"] == CARA.email
    [touch] = [t for t in customer_touches(store, CARA, "C1", private_notes=False) if t["kind"] == "answer"]
    assert touch["collector"] == CARA.email and touch["invoices"] == ["INV-OD5<i>"]
    with pytest.raises(CollectRefused) as again:
        answer_question(store, mail_settings, CARA, _qid(asked), "Twice", now=NOW)
    assert again.value.status == 409 and len(smtp.recorder.messages) == 1


def test_a_question_without_a_contact_is_answered_to_the_billing_contacts(mail_settings, store, ledger, smtp):
    asked = submit_question(store, "C1", "", "Who do I ask?", now=NOW)
    assert answer_question(store, mail_settings, CARA, _qid(asked), "Us.", now=NOW) == ["ann@c1.example"]
    assert [r for r, _ in smtp.recorder.messages] == [["ann@c1.example"]]


def test_an_address_not_on_file_is_refused_when_asking(store, ledger):
    with pytest.raises(DisputeRefused, match="not one we have on file"):
        submit_question(store, "C1", "", "Hi", now=NOW, email="bob@beta.example")  # C2's contact, not C1's


def test_nothing_is_recorded_when_the_answer_did_not_leave(mail_settings, store, ledger, smtp):
    asked = submit_question(store, "C1", "", "Hello?", now=NOW, email="ann@c1.example")
    smtp.recorder.reject = {"ann@c1.example"}
    with pytest.raises(CollectRefused, match="could not be sent"):
        answer_question(store, mail_settings, CARA, _qid(asked), "Hi", now=NOW)
    assert _count(store, question_answers) == 0 and _count(store, touches) == 0


@pytest.mark.parametrize("actor, text, says", [
    (Actor("viv@supplier.example", "viewer"), "Hi", "only collectors"),
    (CARA, "   ", "write the answer"),
    (CARA, "x" * 5001, "at most 5000"),
])
def test_a_refused_answer_sends_and_records_nothing(mail_settings, store, ledger, smtp, actor, text, says):
    asked = submit_question(store, "C1", "", "Hello?", now=NOW)
    with pytest.raises(CollectRefused, match=says):
        answer_question(store, mail_settings, actor, _qid(asked), text, now=NOW)
    assert smtp.recorder.messages == [] and _count(store, question_answers) == 0


def test_the_customer_name_in_the_answer_is_escaped(mail_settings, store, ledger, smtp):
    asked = submit_question(store, "C1", "", "Hello?", now=NOW)
    answer_question(store, mail_settings, CARA, _qid(asked), "Hi", now=NOW)
    [(_, message)] = smtp.recorder.messages
    assert EVIL_NAME not in message.get_body(("html",)).get_content()
