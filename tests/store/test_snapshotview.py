"""The in-memory view of an export agrees with what the store returns once the export is imported."""

from __future__ import annotations

from dataclasses import replace

from portal.export.reader import read_export
from portal.store.importer import invoice_hashes
from portal.store.snapshotview import SnapshotView


def view_of(store, ledger) -> SnapshotView:
    return SnapshotView(ledger, invoice_hashes(ledger), store.key_versions())


def test_states_and_data_match_the_store_after_the_import(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    view = view_of(store, ledger)
    store.import_snapshot(ledger)
    assert view.states() == store.customer_states()
    ids = sorted(ledger.customers)
    assert view.customer_data(ids) == sorted(store.customer_data(ids), key=lambda d: d.customer.customer_id)
    assert view.customer_data(ids[:2]) == store.customer_data(ids[:2])


def test_they_still_match_after_changes_closures_and_a_revocation(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    customer_id = sorted(ledger.customers)[0]
    store.revoke(customer_id)
    invoice = next(iter(ledger.invoices.values()))
    ledger.invoices[invoice.invoice_id] = replace(invoice, balance=invoice.balance - 1, po_number="PO-new")
    del ledger.invoices[sorted(ledger.invoices)[-1]]
    ledger.credits = {k: replace(c, balance=0) for k, c in list(ledger.credits.items())[:1]}
    view = view_of(store, ledger)
    store.import_snapshot(ledger)
    states = store.customer_states()
    assert view.states() == states and states[customer_id].key_version == 2
    ids = sorted(ledger.customers)
    assert view.customer_data(ids) == sorted(store.customer_data(ids), key=lambda d: d.customer.customer_id)


def test_customers_not_in_the_export_are_left_out(store, settings, export_dir):
    ledger = read_export(export_dir, settings)
    assert view_of(store, ledger).customer_data(["nobody", sorted(ledger.customers)[0]])[0].customer == \
        ledger.customers[sorted(ledger.customers)[0]]
    assert len(view_of(store, ledger).customer_data(["nobody"])) == 0
