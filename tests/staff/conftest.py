"""The staff tables' data (tests/staff/test_*_table.py, test_paging.py): the sample export of 8 customers and 60
invoices, first seen 20 days before AS_OF, with events of every receipt kind on a random half of the invoices (seeded:
the same every run) and one account-page view."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.export.reader import read_export
from portal.store import tables
from tests.conftest import AS_OF


@pytest.fixture
def ledger(store, settings, tmp_path):
    from portal.export.sample import write_sample

    ledger = read_export(write_sample(tmp_path / "export", customers=8, invoices=60, seed=11, as_of=AS_OF), settings)
    store.import_snapshot(ledger)
    with store.begin() as conn:
        conn.execute(update(tables.invoices).values(first_seen_at=AS_OF - timedelta(days=20)))
    # Events for a random half of the invoices, of every receipt kind, plus account views and other kinds.
    rng = random.Random(4)
    for inv in sorted(ledger.invoices.values(), key=lambda i: i.invoice_id):
        if rng.random() < 0.5:
            continue
        base = AS_OF - timedelta(days=rng.randrange(1, 40), minutes=rng.randrange(1000))
        for kind in rng.sample(["email_sent", "link_opened", "page_viewed", "document_viewed"], rng.randrange(1, 4)):
            for n in range(rng.randrange(1, 3)):
                store.record_event(kind, inv.customer_id, invoice_id=inv.invoice_id,
                                   occurred_at=base + timedelta(hours=n + 1))
    first = sorted(ledger.customers)[0]
    store.record_event("page_viewed", first, occurred_at=AS_OF - timedelta(days=1), detail="account")
    return ledger
