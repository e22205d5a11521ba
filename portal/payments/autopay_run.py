"""`portal autopay`: notice, then debit, what each enrolled customer chose to pay automatically (docs/autopay.md).

Guarantees, per invoice and due date (one `autopay_charges` row, whose key makes a second debit impossible):
- The advance notice goes out first: a notice is recorded only once the mail transport accepted it, and the debit
  happens only `autopay_notice_days` after a recorded notice and not before the day the customer chose. A debit
  larger than the notice announced is noticed again first.
- The amount is the invoice's `due` from the balances rule at the moment of the debit (portal.payments.autopay
  .eligible), never more than the notice said; invoices in dispute, paid, pending, on hold or promised are left.
- Each debit is a payment attempt (`ap_...`) with its allocation, recorded before Stripe is called, and an
  off-session PaymentIntent with the idempotency key `autopay-<attempt id>`: a run that died after calling Stripe
  sends the same request again and Stripe answers the same PaymentIntent. Stripe's answer is applied as the event
  it stands for (portal.payments.events.apply_event), so the pages, the receipt and the balances follow it as they
  follow any payment; the real events that come later change nothing more.
- A card that needs its holder (`authentication_required`) is not tried again: the customer gets a link to pay on
  the page. Any other failure (or an ACH debit that fails days later) is tried again `autopay_retries` times,
  `autopay_retry_days` apart, the customer told each time; then the collector is told and autopay leaves it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from portal.core.config import Settings
from portal.mail.transport import MailError, Transport, transport_from_url
from portal.payments import autopay_mail as mail
from portal.payments.autopay import Due, eligible
from portal.payments.events import apply_event
from portal.payments.state import FAILURE_TEXT, LEGACY
from portal.payments.stripe_amounts import minimum_charge, to_stripe
from portal.store import autopay as apstore
from portal.store import payments as paystore
from portal.store.database import Store
from portal.store.payments import Snapshot

log = logging.getLogger(__name__)

PREFIX = "ap_"  # autopay's attempt ids: its failures are mailed by the run, not by the payment mail job


def is_autopay_attempt(attempt_id: str) -> bool:
    return attempt_id.startswith(PREFIX)


@dataclass
class RunResult:
    lines: list[str] = field(default_factory=list)
    problems: int = 0

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def summary(self) -> str:
        return "\n".join([*self.lines, f"autopay: {len(self.lines)} action(s), {self.problems} problem(s)"])


def run_autopay(settings: Settings, store: Store, client: stripe.StripeClient, now: datetime | None = None,
                transport: Transport | None = None) -> RunResult:
    """One run over every enrolled customer (the CLI holds the run's lock)."""
    now = now or datetime.now(UTC)
    transport = transport or transport_from_url(settings.mail_url)
    result = RunResult()
    with store.begin() as conn:
        choices = apstore.all_choices(conn)
    for choice in choices:
        try:
            _customer(settings, store, client, transport, choice, now, result)
        except MailError as exc:
            result.problems += 1
            result.lines.append(f"mail failed for {choice.customer_id}: {exc.message} (tried again next run)")
    return result


def _customer(settings: Settings, store: Store, client: stripe.StripeClient, transport: Transport,
              choice: apstore.Choice, now: datetime, result: RunResult) -> None:
    today = now.date()
    with store.begin() as conn:
        method = apstore.method(conn, choice.method_id)
        returned = _returned(conn, choice.customer_id)
    if method is None or method.detached_at is not None or not method.ready:
        return
    for due, tries, code in returned:
        _after_failure(settings, store, transport, choice, method, due, tries, code, now, result)
    with store.begin() as conn:
        dues, _left = eligible(conn, choice, today)
    notice = timedelta(days=settings.autopay_notice_days)
    for due in dues:
        if due.amount < minimum_charge(due.currency):
            continue  # below what Stripe charges: left for the customer (docs/autopay.md)
        with store.begin() as conn:
            row = apstore.charge(conn, choice.customer_id, due.invoice_id, due.due_date)
        if row is None or (row.state == "noticed" and due.amount > row.amount):
            if today >= due.charge_on - notice:
                _notice(settings, store, transport, choice, method, due, now, row is None)
                result.lines.append(f"notice: {choice.customer_id} invoice {due.number} {due.amount} "
                                    f"{due.currency} on {max(due.charge_on, (now + notice).date())}")
            continue
        ready = (row.state == "noticed" and today >= row.charge_on and row.noticed_at is not None
                 and now >= row.noticed_at + notice)
        retry = row.state == "failed" and row.next_try_at is not None and now >= row.next_try_at
        if ready or retry or row.state == "charging":
            amount = min(due.amount, row.amount)  # never more than the notice announced
            _debit(settings, store, client, transport, choice, method, due, row, amount, now, result)


def _notice(settings: Settings, store: Store, transport: Transport, choice: apstore.Choice,
            method: apstore.Method, due: Due, now: datetime, new: bool) -> None:
    day = max(due.charge_on, (now + timedelta(days=settings.autopay_notice_days)).date())
    context = mail.texts(settings, store, choice.customer_id, due.amount, due.currency, day, method.kind,
                         method.last4)
    messages = mail.customer_messages(settings, store, choice.customer_id, "autopay_notice", due.invoice_id,
                                      number=due.number, **context)
    mail.send_all(settings, transport, messages)  # first: nothing is recorded for a notice that did not go
    with store.begin() as conn:
        values = {"state": "noticed", "amount": due.amount, "noticed_at": now, "charge_on": day, "updated_at": now}
        if new:
            apstore.insert_charge(conn, customer_id=choice.customer_id, invoice_id=due.invoice_id,
                                  due_date=due.due_date, attempt_id="", tries=0, next_try_at=None, failure="",
                                  **values)
        else:
            apstore.update_charge(conn, choice.customer_id, due.invoice_id, due.due_date, **values)
        store.add_event(conn, "autopay_notice", choice.customer_id, invoice_id=due.invoice_id, detail=str(due.amount))


def _debit(settings: Settings, store: Store, client: stripe.StripeClient, transport: Transport,
           choice: apstore.Choice, method: apstore.Method, due: Due, row: apstore.Charge, amount: int,
           now: datetime, result: RunResult) -> None:
    with store.begin() as conn:
        attempt_id = row.attempt_id if row.state == "charging" and row.attempt_id else _new_attempt(
            conn, choice.customer_id, method, due, amount, datetime.now(UTC))
        apstore.update_charge(conn, choice.customer_id, due.invoice_id, due.due_date, state="charging",
                              attempt_id=attempt_id, updated_at=now)
        attempt = paystore.get_attempt(conn, attempt_id)
        stripe_customer = apstore.stripe_customer(conn, choice.customer_id)
    assert attempt is not None
    params: dict[str, Any] = {
        "amount": to_stripe(attempt.amount, attempt.currency), "currency": attempt.currency.lower(),
        "customer": stripe_customer, "payment_method": method.method_id, "off_session": True, "confirm": True,
        "allowed_payment_method_types": [method.kind], "description": f"Invoice {due.number} (autopay)",
        "metadata": {"attempt_id": attempt_id, "customer_id": choice.customer_id, "invoice_id": due.invoice_id},
    }
    if method.kind == "us_bank_account" and method.mandate:
        params["mandate"] = method.mandate
    try:
        intent = client.v1.payment_intents.create(params=params, options={"idempotency_key": f"autopay-{attempt_id}"})
    except stripe.CardError as exc:
        body = (exc.json_body or {}).get("error") or {}
        _failed(settings, store, transport, choice, method, due, row, attempt_id, body, now, result)
        return
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        # Unknown outcome: the next run sends the same request (same idempotency key) and learns it.
        log.warning("autopay debit %s: %s", attempt_id, exc)
        result.problems += 1
        result.lines.append(f"unreachable: {choice.customer_id} invoice {due.number}: tried again next run")
        return
    except stripe.StripeError as exc:
        body = (exc.json_body or {}).get("error") or {"code": getattr(exc, "code", "") or "", "message": str(exc)}
        _failed(settings, store, transport, choice, method, due, row, attempt_id, body, now, result)
        return
    _apply_intent(store, intent.to_dict())
    with store.begin() as conn:
        apstore.update_charge(conn, choice.customer_id, due.invoice_id, due.due_date, state="charged", updated_at=now)
    result.lines.append(f"debited: {choice.customer_id} invoice {due.number} {amount} {due.currency} "
                        f"({intent.status})")


def _new_attempt(conn: Any, customer_id: str, method: apstore.Method, due: Due, amount: int, now: datetime) -> str:
    attempt_id = PREFIX + secrets.token_hex(12)
    paystore.insert_attempt(conn, {
        "attempt_id": attempt_id, "customer_id": customer_id, "status": "created", "method": method.kind,
        "currency": due.currency, "subtotal": amount, "adjustment": 0, "amount": amount, "unapplied": 0,
        "credit_applied": 0, "refunded": 0, "needs_review": False, "payer_email": "", "checkout_session": "",
        "payment_intent": "", "charge": "", "failure_reason": "", "created_at": now, "updated_at": now,
        "counted_at": None}, [{"invoice_id": due.invoice_id, "number": due.number, "amount": amount, "applied": 0}], [])
    # An off-session payment has no Checkout: the customer's consent is the enrolment, so the attempt starts as a
    # completed session would leave it (portal.payments.state: a failure then fails the attempt).
    paystore.save_snapshots(conn, attempt_id, [Snapshot(f"offsession:{attempt_id}", "session", 0, 1, LEGACY,
                                                        data={"outcome": "completed", "email": ""})], now)
    return attempt_id


def _apply_intent(store: Store, intent: dict[str, Any]) -> None:
    """Stripe's answer, applied as the event it stands for. Its time is 0, older than any real event: Stripe's own
    events about the PaymentIntent (a bank debit that fails days later) always win over it, in any order. It is
    recorded at the real time, not the run's `now`: money moved when Stripe was called, and the balances rule
    compares that moment with the export's as_of."""
    status = str(intent.get("status") or "")
    kind = {"succeeded": "payment_intent.succeeded", "processing": "payment_intent.processing"}.get(
        status, "payment_intent.payment_failed")
    apply_event(store, {"id": f"autopay:{intent.get('id')}:{status}", "type": kind, "created": 0,
                        "data": {"object": intent}}, datetime.now(UTC))


def _failed(settings: Settings, store: Store, transport: Transport, choice: apstore.Choice, method: apstore.Method,
            due: Due, row: apstore.Charge, attempt_id: str, error: dict[str, Any], now: datetime,
            result: RunResult) -> None:
    intent = error.get("payment_intent")
    code = str(error.get("decline_code") if error.get("code") == "card_declined" and error.get("decline_code")
               else error.get("code") or "")
    if isinstance(intent, dict) and intent.get("id"):
        _apply_intent(store, {**intent, "status": "requires_payment_method",
                              "last_payment_error": intent.get("last_payment_error") or error})
    else:
        with store.begin() as conn:
            paystore.update_attempt(conn, attempt_id, status="failed", updated_at=datetime.now(UTC),
                                    failure_reason=FAILURE_TEXT.get(code, code or "declined"))
    _after_failure(settings, store, transport, choice, method, due, row.tries, code, now, result)


def _after_failure(settings: Settings, store: Store, transport: Transport, choice: apstore.Choice,
                   method: apstore.Method, due: Due, tries_before: int, code: str, now: datetime,
                   result: RunResult) -> None:
    tries = tries_before + 1
    # English for the records and the collector; the customer is told in their language (autopay_mail.reason_text).
    reason = FAILURE_TEXT.get(code) or code.replace("_", " ") or "declined"
    told = mail.reason_text(settings, store, choice.customer_id, code)
    context = mail.texts(settings, store, choice.customer_id, due.amount, due.currency, now.date(), method.kind,
                         method.last4)
    if code == "authentication_required":
        state, next_try = "needs_customer", None
        messages = mail.customer_messages(settings, store, choice.customer_id, "autopay_action", due.invoice_id,
                                          number=due.number, **context)
    elif tries <= settings.autopay_retries:
        state, next_try = "failed", now + timedelta(days=settings.autopay_retry_days)
        context["next_text"] = mail.texts(settings, store, choice.customer_id, 0, due.currency, next_try.date(),
                                          method.kind, method.last4)["day_text"]
        messages = mail.customer_messages(settings, store, choice.customer_id, "autopay_failed", due.invoice_id,
                                          number=due.number, reason=told, retry=True, **context)
    else:
        state, next_try = "reported", None
        messages = mail.customer_messages(settings, store, choice.customer_id, "autopay_failed", due.invoice_id,
                                          number=due.number, reason=told, retry=False, next_text="", **context)
        report = mail.collector_message(settings, store, choice.customer_id, due.number,
                                        str(context["amount_text"]), reason, tries)
        messages += [report] if report is not None else []
    with store.begin() as conn:
        apstore.update_charge(conn, choice.customer_id, due.invoice_id, due.due_date, state=state, tries=tries,
                              next_try_at=next_try, failure=reason, updated_at=now)
        store.add_event(conn, f"autopay_{state}", choice.customer_id, invoice_id=due.invoice_id, detail=reason)
    result.lines.append(f"{state}: {choice.customer_id} invoice {due.number}: {reason}")
    mail.send_all(settings, transport, messages)


def _returned(conn: Any, customer_id: str) -> list[tuple[Due, int, str]]:
    """Debits Stripe accepted that failed later (an ACH return): each is tried again or reported like any failure.
    (invoice as a Due, tries so far, the failure's code)"""
    found = []
    for row in apstore.charges_of(conn, customer_id):
        if row.state != "charged" or not row.attempt_id:
            continue
        attempt = paystore.get_attempt(conn, row.attempt_id)
        if attempt is None or attempt.status != "failed":
            continue
        number = next((a.number for a in paystore.allocations_of(conn, row.attempt_id)), row.invoice_id)
        code = next((k for k, v in FAILURE_TEXT.items() if v == attempt.failure_reason), "")
        found.append((Due(row.invoice_id, number, attempt.currency, row.due_date, row.charge_on, row.amount),
                      row.tries, code))
    return found
