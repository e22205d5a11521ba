"""The emails that follow an event, as queued jobs: the payer's receipt (or pending or failure notice), the
collector's "new dispute" or "new question", and the customer's "your dispute is resolved".

Each job's payload is what the event's transaction knew (the attempt's change, the submitted dispute); the
message is made when the job runs, from the store as it is then (where the invoices stand now), and sent once:
every accepted message is recorded under the job (portal/store/jobqueue.py `job_messages`) before the job ends,
so a job run again after its worker died skips what already left. Its Message-ID is fixed by the job and the
recipient, so the one case that can still send twice (a crash between the server accepting a message and that
record committing) sends the same id, which mail systems and people can tell apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

from portal.balances import position
from portal.core.config import Settings
from portal.core.signing import Signer
from portal.disputes import service as disputes
from portal.mail.transport import Transport, send_with_retry
from portal.payments.events import PAYMENT_MAIL, Change
from portal.payments.messages import payment_message
from portal.selfservice import approvals, contacts
from portal.store import jobqueue
from portal.store import payments as paystore
from portal.store.database import Store
from portal.store.jobqueue import Job

DISPUTE_MAIL, QUESTION_MAIL, RESOLUTION_MAIL = "dispute_mail", "question_mail", "resolution_mail"


def account_url(settings: Settings, store: Store, customer_id: str) -> str:
    """The customer's account page at its current key (a revoked customer has none: "")."""
    version = store.active_key_version(customer_id)
    if not version:
        return ""
    return f"{settings.site_url.rstrip('/')}/c/{Signer(settings).customer_key(customer_id, version)}/index.html"


def payment_messages(settings: Settings, store: Store, job: Job) -> Iterator[EmailMessage]:
    payload = dict(job.payload)
    payload["numbers"] = tuple(payload.get("numbers", ()))
    change = Change(**payload)
    name, contacts = store.customer_contacts(change.customer_id)
    if change.payer_email:
        to = [("", change.payer_email)]
    else:
        to = [(c.name, c.email) for c in contacts if c.role == "billing"][:1]
    with store.begin() as conn:  # where the invoices paid stand now (portal/balances/position.py)
        locale = store.customer_locale(change.customer_id, conn) or settings.default_locale
        standing = position.standing(conn, [(a.invoice_id, a.number, change.currency)
                                            for a in paystore.allocations_of(conn, change.attempt_id)], locale)
    url = account_url(settings, store, change.customer_id)
    for recipient in to:
        message = payment_message(settings, change, recipient, name, url, standing, locale)
        if message is not None:
            yield message


def collector_messages(settings: Settings, store: Store, job: Job) -> Iterator[EmailMessage]:
    payload = dict(job.payload)
    kind = payload.pop("kind")
    for key in ("numbers", "attachments", "standing"):
        payload[key] = tuple(payload.get(key, ()))
    yield disputes.collector_message(settings, disputes.Submitted(**payload), kind)


def resolution_messages(settings: Settings, store: Store, job: Job) -> Iterator[EmailMessage]:
    yield from disputes.resolution_messages(settings, store, int(job.payload["dispute_id"]))


MESSAGES = {PAYMENT_MAIL: payment_messages, DISPUTE_MAIL: collector_messages, QUESTION_MAIL: collector_messages,
            RESOLUTION_MAIL: resolution_messages}


def _one(message: EmailMessage | None) -> Iterator[EmailMessage]:
    if message is not None:
        yield message


# Self-service (portal/selfservice): an address's confirmation link, the collector's notice of a confirmed change,
# an approver's invoice link, the collector's check of a typed approver address.
MESSAGES[contacts.CONFIRM_MAIL] = lambda settings, store, job: _one(
    contacts.confirm_message(settings, store, str(job.payload["change_id"])))
MESSAGES[contacts.CHANGED_MAIL] = lambda settings, store, job: _one(
    contacts.changed_message(settings, store, str(job.payload["change_id"])))


def send_once(settings: Settings, store: Store, transport: Transport, job: Job,
              messages: Iterable[EmailMessage]) -> int:
    """Send each message unless this job sent it already; record each right after it was accepted. Returns how
    many were sent now. A failure raises (MailError): the job is retried, and skips what was sent."""
    with store.begin() as conn:
        done = jobqueue.sent_recipients(conn, job.job_id)
    sent = 0
    for message in messages:
        recipient = str(message["To"])
        if recipient in done:
            continue
        domain = str(message.get("From", "")).rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
        del message["Message-ID"]
        tag = hashlib.sha256(recipient.encode()).hexdigest()[:16]
        message["Message-ID"] = f"<job-{job.job_id}-{tag}@{domain}>"
        message_id = send_with_retry(transport, message, settings.mail_attempts, settings.mail_retry_delay_ms / 1000)
        with store.begin() as conn:
            jobqueue.record_message(conn, job.job_id, recipient, message_id, datetime.now(UTC))
        sent += 1
    return sent
MESSAGES[approvals.APPROVER_MAIL] = lambda settings, store, job: _one(
    approvals.approver_message(settings, store, str(job.payload["request_id"])))
MESSAGES[approvals.CHECK_MAIL] = lambda settings, store, job: _one(
    approvals.check_message(settings, store, str(job.payload["request_id"])))
