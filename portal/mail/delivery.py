"""Delivering a run's messages, shared by `portal send`, `portal remind` and `portal digest` (docs/email.md).

`deliver` hands each message to the transport (retrying transient failures), records it only once the
transport accepted it (one transaction per message), and reports every message. When the transport stays
down after its retries, the rest of the run is not attempted (each message would wait through the same
retries) and is reported so; nothing unsent is recorded, so the next run sends exactly the rest.

A message refused for good for its recipient (an SMTP 5xx at RCPT, SES MessageRejected) is not sent either,
but the refusal is recorded as a bounce of that message and address (portal/store/mail.py, `mail_bounces`):
it would otherwise vanish with the run's output, and the collector needs to know the address is dead
(docs/collect.md, "Reminder returned undeliverable"). The next run tries the address again all the same: the
export may have corrected it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from portal.core.config import Settings
from portal.mail.transport import MailError, Transport, send_with_retry, transport_from_url
from portal.store.database import Store
from portal.store.mail import Bounce, SentRow, record_bounce, record_sent


@dataclass
class Outgoing:
    """A message ready to hand over, and what to record once it is accepted."""

    kind: str
    customer_id: str
    contact_id: str
    email: str
    message: EmailMessage
    rows: list[SentRow]
    invoice_numbers: list[str]


@dataclass
class MessageReport:
    kind: str
    customer_id: str
    contact_id: str
    email: str
    invoice_numbers: list[str]
    status: str  # sent | would send | failed | not attempted
    message_id: str = ""
    error: str = ""


@dataclass
class SendResult:
    """What a run sent (or, with dry_run, would send), message by message."""

    dry_run: bool
    messages: list[MessageReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why contacts or invoices got nothing, for the summary

    def having(self, status: str) -> list[MessageReport]:
        return [m for m in self.messages if m.status == status]

    @property
    def ok(self) -> bool:
        return not self.having("failed") and not self.having("not attempted")

    def summary(self) -> str:
        lines = []
        for m in self.messages:
            numbers = ", ".join(m.invoice_numbers) or "-"
            extra = f" ({m.error})" if m.error else ""
            lines.append(f"{m.status}: {m.kind} to {m.email} [{m.customer_id}/{m.contact_id}] invoices {numbers}"
                         f"{extra}")
        lines.extend(f"skipped: {reason}" for reason in self.skipped)
        verb = "would send" if self.dry_run else "sent"
        lines.append(f"{len(self.having('would send' if self.dry_run else 'sent'))} message(s) {verb}, "
                     f"{len(self.having('failed'))} failed, {len(self.having('not attempted'))} not attempted, "
                     f"{len(self.skipped)} skipped")
        return "\n".join(lines)


def deliver(settings: Settings, store: Store, outgoing: Iterable[Outgoing], dry_run: bool, now: datetime,
            transport: Transport | None = None, sleep: Callable[[float], None] = time.sleep,
            result: SendResult | None = None) -> SendResult:
    """Send each message and record it right after the transport accepted it (one transaction per message)."""
    result = result or SendResult(dry_run)
    if not dry_run and transport is None:
        transport = transport_from_url(settings.mail_url)
    down = ""
    for out in outgoing:
        report = MessageReport(out.kind, out.customer_id, out.contact_id, out.email, out.invoice_numbers,
                               "would send" if dry_run else "not attempted")
        result.messages.append(report)
        if dry_run:
            continue
        if down:
            report.error = f"transport unavailable: {down}"
            continue
        assert transport is not None
        try:
            message_id = send_with_retry(transport, out.message, settings.mail_attempts,
                                         settings.mail_retry_delay_ms / 1000, sleep)
        except MailError as exc:
            report.status, report.error = "failed", exc.message
            if exc.refused and not exc.transient:
                _record_refusal(store, out, exc, now)
                report.error += " (recorded as undeliverable)"
            if exc.transient:  # still failing after every retry: the relay is down, not this address
                down = exc.message
            continue
        except OSError as exc:  # the outbox folder cannot be written: no later message will fare better
            report.status = "failed"
            report.error = down = f"{exc.__class__.__name__}: {exc}"
            continue
        report.status, report.message_id = "sent", message_id
        with store.begin() as conn:
            record_sent(conn, out.kind, message_id, now, out.rows)
    return result


def _record_refusal(store: Store, out: Outgoing, exc: MailError, now: datetime) -> None:
    message_id = str(out.message["Message-ID"] or "")
    invoice_ids = tuple(r.invoice_id for r in out.rows if r.invoice_id)
    with store.begin() as conn:
        for address, (status, words) in exc.refused.items():
            record_bounce(conn, Bounce(message_id, address, out.customer_id, out.contact_id, out.kind, status, words,
                                       "sending", now, invoice_ids), now)
