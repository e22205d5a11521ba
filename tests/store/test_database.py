from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from portal.export.reader import read_export
from portal.store import tables
from portal.store.migrations import alembic_config
from portal.store.registry import metadata as every_table
from tests.conftest import AS_OF


def test_migrations_match_the_tables(store):
    """Autogenerate finds nothing to do: the Alembic history and every table of the store
    (portal/store/registry.py) agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, every_table) == []
    assert alembic_config().get_main_option("script_location")


def test_import_is_idempotent_and_tracks_changes(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    first = store.import_snapshot(ledger)
    assert (first.new, first.changed, first.closed) == (len(ledger.invoices), 0, 0)
    again = store.import_snapshot(ledger)
    assert (again.new, again.changed, again.closed) == (0, 0, 0)

    invoice = next(iter(ledger.invoices.values()))
    ledger.invoices[invoice.invoice_id] = replace(invoice, balance=invoice.balance - 1)
    gone = sorted(ledger.invoices)[-1]
    del ledger.invoices[gone]
    changed = store.import_snapshot(ledger)
    assert (changed.new, changed.changed, changed.closed) == (0, 1, 1)

    with store.begin() as conn:
        row = conn.execute(select(tables.invoices).where(tables.invoices.c.invoice_id == gone)).one()
    assert row.is_open is False and row.closed_at == AS_OF


def test_import_keeps_events_and_revocations(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    customer_id = next(iter(ledger.customers))
    store.record_event("link_opened", customer_id, contact_id="x", invoice_id="I000001")
    assert store.revoke(customer_id) == 2
    store.import_snapshot(ledger)
    assert store.count_events(kind="link_opened", customer_id=customer_id) == 1
    assert store.key_version(customer_id) == 2
    assert store.revoke(customer_id) == 3


def test_customer_data_round_trips_money_and_decimals(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    data = {d.customer.customer_id: d for d in store.customer_data()}
    assert set(data) == set(ledger.customers)
    for customer_id, bundle in data.items():
        expected = sorted(i.invoice_id for i in ledger.invoices.values() if i.customer_id == customer_id)
        assert sorted(i.invoice_id for i in bundle.invoices) == expected
        for invoice in bundle.invoices:
            assert invoice == ledger.invoices[invoice.invoice_id]
            assert bundle.lines.get(invoice.invoice_id, []) == ledger.lines.get(invoice.invoice_id, [])
        assert bundle.as_of == AS_OF
