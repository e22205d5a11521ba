"""The mail tests' kit: a real SMTP server (aiosmtpd on 127.0.0.1) that can refuse addresses and fail after N
messages, and a small AR export whose dates, roles and names the tests rely on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import MetaData, Table, insert
from sqlalchemy.engine import Connection

from portal.export.model import Contact, Customer, Invoice, Ledger
from tests.ports import free_port


class Recorder:
    """The handler: keeps accepted messages; `reject` addresses get 550 at RCPT; after `fail_after` accepted
    messages every DATA gets a 451 (a relay in trouble: transient)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.reject: set[str] = set()
        self.fail_after: int | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address.lower() in self.reject:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            if self.fail_after is not None and len(self.messages) >= self.fail_after:
                return "451 4.3.0 Try again later"
            message = message_from_bytes(envelope.content, policy=policy.default)
            self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()  # aiosmtpd cannot bind port 0: its readiness check needs the number
        self.recorder = Recorder()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.running = False

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return [m for _, m in self.recorder.messages]

    def start(self) -> SmtpServer:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False


def running_smtp() -> Iterator[SmtpServer]:
    """For a fixture in each mail test module: `yield from running_smtp()`."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


# --- a small AR export for the mail tests: every name, date and role chosen on purpose ---------------

EVIL_NAME = "<script>alert(1)</script> & Co"


def mail_ledger(today: date, folder: Path) -> Ledger:
    """Customer C1 (an HTML-hostile name, group Retail, a collector) with billing, approver and other
    contacts; C2 (group Key accounts, no collector) with one billing contact. Invoice due dates are days
    from `today`: SOON +2, LATER +19, OD5 -5, OD20 -20, DISP -10, PEND -8 (C1); B1 -3 (C2)."""
    customers = {
        "C1": Customer("C1", EVIL_NAME, "USD", "en_US", "Retail", "cara@supplier.example"),
        "C2": Customer("C2", "Beta LLC", "USD", "en_US", "Key accounts", ""),
    }
    contacts = [
        Contact("C1", "k1", "ann@c1.example", "Ann <b>Bold</b>", "billing"),
        Contact("C1", "k2", "pat@c1.example", "Pat", "approver"),
        Contact("C1", "k3", "sam@c1.example", "Sam", "other"),
        Contact("C2", "b1", "bob@beta.example", "Bob", "billing"),
    ]
    due = {"SOON": 2, "LATER": 19, "OD5": -5, "OD20": -20, "DISP": -10, "PEND": -8}
    invoices = {}
    for n, (name, days) in enumerate(due.items(), start=1):
        invoice_id = f"I-{name}"
        invoices[invoice_id] = Invoice(invoice_id, "C1", f"INV-{name}<i>", today - timedelta(days=30),
                                       today + timedelta(days=days), 10000 * n, 10000 * n, "USD")
    invoices["I-B1"] = Invoice("I-B1", "C2", "B-1", today - timedelta(days=33), today - timedelta(days=3),
                               5000, 5000, "USD")
    return Ledger(folder, datetime.combine(today, datetime.min.time(), UTC), customers, contacts, invoices)


def mailed_ledger(store: Any, folder: Path, settings: Any, smtp: Any, today: date, sent: datetime) -> Ledger:
    """`mail_ledger` imported as of `today` with its invoice emails sent at `sent` (`portal send`), and the SMTP
    server's inbox emptied: where the reminder tests start."""
    from portal.mail.sending import send_invoices

    ledger = mail_ledger(today, folder)
    store.import_snapshot(ledger)
    assert send_invoices(settings, store, now=sent).ok
    smtp.recorder.messages.clear()
    return ledger


def changed(ledger: Ledger, invoice_id: str, **fields: object) -> Ledger:
    """The same export with one invoice changed (e.g. a new balance)."""
    return replace(ledger, invoices={**ledger.invoices,
                                     invoice_id: replace(ledger.invoices[invoice_id], **fields)})  # type: ignore[arg-type]


# --- rows in tables whose other columns a test need not know -----------------------------------------------


def add_row(conn: Connection, name: str, **values: object) -> None:
    """Insert into a table whose other columns we may not know, filling required ones with neutral values."""
    table = Table(name, MetaData(), autoload_with=conn)
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.nullable or column.autoincrement is True or column.server_default:
            continue
        kind = column.type.python_type
        row[column.name] = {int: 0, bool: False, datetime: datetime(2026, 1, 1)}.get(kind, "x")
    conn.execute(insert(table).values(**row))
