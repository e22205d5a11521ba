"""Answering a customer's question from the dashboard: the answer is emailed to the contact who asked (Reply-To the
collector who answered, so the conversation goes on in their mailbox) and kept as a touch on the timeline.

Guarantees:
- the answer goes only to addresses on file: the asking contact when the question named one and it is still on
  file, else the customer's billing contacts (else every contact); never an address typed anywhere;
- a question is answered once: its row is locked while it is answered, and a second answer is refused;
- the answer is recorded (answer row, touch) only after the transport accepted the message, in one transaction;
  a message the transport refused records nothing, and the collector is told, so nothing says "answered" that
  did not leave. (A crash between the two could send once without a record; the collector then sees the question
  still open and may answer again: the same trade-off as portal/mail/delivery.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, select

from portal.collect.access import Actor, CollectRefused, require_worker
from portal.core.config import Settings
from portal.core.i18n import translations_for
from portal.mail.messages import render_message
from portal.mail.transport import MailError, Transport, send_with_retry, transport_from_url
from portal.store import disputes as disputestore
from portal.store.collect import insert_touch, question_answers
from portal.store.database import Store
from portal.store.tables import contacts, customers, invoices

MAX_ANSWER = 5000
_Q = disputestore.questions


def customer_questions(store: Store, customer_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The customer's questions, newest first: text, invoice number, the asking contact (name, email; "" when
    not said or no longer on file) and the answer (answer, answered_by, answered_at; None when unanswered)."""
    query = (select(_Q.c.question_id, _Q.c.message, _Q.c.created_at, _Q.c.contact_id,
                    invoices.c.number, contacts.c.name.label("contact_name"), contacts.c.email.label("contact_email"),
                    question_answers.c.answer, question_answers.c.answered_by, question_answers.c.answered_at,
                    question_answers.c.sent_to)
             .select_from(_Q.outerjoin(invoices, and_(invoices.c.invoice_id == _Q.c.invoice_id,
                                                      invoices.c.customer_id == _Q.c.customer_id))
                          .outerjoin(contacts, and_(contacts.c.customer_id == _Q.c.customer_id,
                                                    contacts.c.contact_id == _Q.c.contact_id))
                          .outerjoin(question_answers, question_answers.c.question_id == _Q.c.question_id))
             .where(_Q.c.customer_id == customer_id)
             .order_by(_Q.c.created_at.desc(), _Q.c.question_id.desc()).limit(limit))
    with store.begin() as conn:
        return [r._asdict() for r in conn.execute(query)]


def _recipients(conn: Any, customer_id: str, contact_id: str) -> list[Any]:
    on_file = conn.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                           .order_by(contacts.c.contact_id)).all()
    asked = [c for c in on_file if contact_id and c.contact_id == contact_id]
    return asked or [c for c in on_file if c.role == "billing"] or list(on_file)


def answer_question(store: Store, settings: Settings, actor: Actor, question_id: int, text: str,
                    now: datetime | None = None, transport: Transport | None = None) -> list[str]:
    """Email `text` as the answer to the question and record it; returns the addresses it went to. CollectRefused
    (nothing sent, nothing written) for a viewer, an unknown or answered question, an empty or too long answer, a
    customer without contacts, or a message the transport refused."""
    require_worker(actor)
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise CollectRefused("write the answer: it is emailed to the customer")
    if len(text) > MAX_ANSWER:
        raise CollectRefused(f"the answer has {len(text)} characters; at most {MAX_ANSWER}")
    now = now or datetime.now(UTC)
    transport = transport or transport_from_url(settings.mail_url)
    with store.begin() as conn:
        question = conn.execute(select(_Q).where(_Q.c.question_id == question_id).with_for_update()).first()
        if question is None:
            raise CollectRefused(f"question Q-{question_id} does not exist", 404)
        if conn.execute(select(question_answers.c.question_id)
                        .where(question_answers.c.question_id == question_id)).first():
            raise CollectRefused(f"question Q-{question_id} is answered already", 409)
        row = conn.execute(select(customers.c.name, customers.c.locale)
                           .where(customers.c.customer_id == question.customer_id)).first()
        name, locale = (row.name, row.locale) if row else ("", "")
        # The customer's mail: in the customer's language (customers.csv locale), subject and body.
        t = translations_for(locale, settings.default_locale)
        to = _recipients(conn, question.customer_id, question.contact_id)
        if not to:
            raise CollectRefused(f"customer {question.customer_id!r} has no contact on file to answer")
        sent: list[str] = []
        message_ids: list[str] = []
        for contact in to:
            message = render_message(
                settings, "question_answer", (contact.name, contact.email),
                t.gettext("Your question %(reference)s · %(company)s")
                % {"reference": f"Q-{question_id}", "company": settings.company_name},
                locale=locale, contact_name=contact.name,
                customer_name=name, reference=f"Q-{question_id}", question=question.message, answer=text)
            # Replies reach the collector who answered, not a no-reply address.
            message["Reply-To"] = actor.email
            try:
                message_ids.append(send_with_retry(transport, message, settings.mail_attempts,
                                                   settings.mail_retry_delay_ms / 1000))
            except MailError as exc:
                if not sent:
                    raise CollectRefused(f"the answer could not be sent ({exc.message}); nothing was recorded",
                                         502) from exc
                break  # some went: record what left, say so below through `sent`
            sent.append(contact.email)
        conn.execute(insert(question_answers).values(
            question_id=question_id, customer_id=question.customer_id, answer=text, answered_by=actor.email,
            answered_at=now, sent_to=", ".join(sent), message_id=" ".join(message_ids)))
        insert_touch(conn, {"customer_id": question.customer_id, "kind": "answer", "outcome": "",
                            "body": f"Q-{question_id} to {', '.join(sent)}: {text}", "collector": actor.email,
                            "created_by": actor.email, "contact_id": question.contact_id, "occurred_at": now},
                     [question.invoice_id] if question.invoice_id else [])
    return sent
