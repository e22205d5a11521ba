"""Helpers shared by the webhook tests: an app over a test store, tokens of every kind (and their respellings),
event counts, which documents a browser may show."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from portal.core.config import Settings
from portal.core.signing import Signer
from portal.export.model import Ledger
from portal.export.reader import read_export
from portal.store import tables
from portal.store.database import Store
from webhook import create_app

# Limits high enough that no test trips them by accident; the rate-limit tests set their own.
RELAXED = {"RATE_LIMIT_IP": "100000/60", "RATE_LIMIT_TOKEN": "100000/60", "RATE_LIMIT_FRESH": "100000/60"}


@contextmanager
def make_app(settings: Settings, tmp_path: Path, site_dir: Path | None = None, **config: Any) -> Iterator[Flask]:
    """The webhook over the test's database, mailing into tmp_path/outbox; its connections closed after."""
    settings = settings.replace(mail_url=f"outbox:{tmp_path / 'outbox'}")
    site = site_dir or tmp_path / "site"
    site.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, site_dir=site, config={**RELAXED, "TESTING": True, **config})
    try:
        yield app
    finally:
        runner = app.extensions.get("jobs")
        if runner is not None:  # its thread must not outlive the test's database
            runner.shutdown()
        app.extensions["portal"].store.close()


def import_sample(store: Store, settings: Settings, export_dir: Path) -> Ledger:
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    return ledger


# --- two customers of the sample, for the link and document tests ---------------------------------------------


def two_customers(ledger: Ledger) -> tuple[str, str]:
    """Two customers that each have a contact, an open invoice and (A) a supplied document."""
    with_docs = sorted({d.customer_id for d in ledger.documents.values()})
    a = with_docs[0]
    billed = {i.customer_id for i in ledger.invoices.values()}
    b = next(c for c in sorted(ledger.customers) if c != a and c in billed)
    return a, b


def contact_of(ledger: Ledger, customer_id: str) -> Any:
    return next(c for c in ledger.contacts if c.customer_id == customer_id)


def invoice_of(ledger: Ledger, customer_id: str) -> Any:
    return next(i for i in sorted(ledger.invoices.values(), key=lambda i: i.invoice_id)
                if i.customer_id == customer_id)


def site_address(settings: Settings, signer: Signer, customer_id: str, version: int = 1) -> str:
    return f"{settings.site_url}/c/{signer.customer_key(customer_id, version)}"


def old_link_token(settings: Settings, customer_id: str, contact_id: str, invoice_id: str, key_version: int,
                   age_days: float) -> str:
    """A genuine link token signed `age_days` ago (itsdangerous reads the time from `get_timestamp`)."""

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_days * 86400)

    serializer = URLSafeTimedSerializer([settings.secret_key], salt="link", signer=Earlier)
    return serializer.dumps([customer_id, contact_id, invoice_id, key_version])


def all_events(store: Store) -> list[Any]:
    with store.begin() as conn:
        return conn.execute(select(tables.events).order_by(tables.events.c.event_id)).all()


def tamper(token: str) -> str:
    """Change one character of the signature part (the last one may carry spare bits, so not that one)."""
    index = len(token) - 5
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1:]


def outbox_messages(tmp_path: Path, name: str = "outbox") -> list[EmailMessage]:
    folder = tmp_path / name if name else tmp_path
    if not folder.is_dir():
        return []
    return [message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
            for p in sorted(folder.glob("*.eml"))]


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no hidden field {name} in the page"
    return match.group(1)


def place_documents(ledger: Ledger, settings: Settings, store: Store, site_dir: Path) -> None:
    """Copy the export's documents where a build puts them: docs/<customer_key>/<sha256><ext>."""
    signer = Signer(settings)
    for doc in ledger.documents.values():
        key = signer.customer_key(doc.customer_id, store.key_version(doc.customer_id))
        target = site_dir / "docs" / key / f"{doc.sha256}{doc.extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ledger.document_path(doc), target)
