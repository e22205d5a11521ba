"""The stored positions (portal/balances/stored.py): written by every change (an import, a payment event, a
dispute), equal to the recomputed rule, rebuilt for a database upgraded from before them (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select

from portal.balances import position
from portal.balances import stored as stored_positions
from portal.export.reader import read_export
from portal.store import payments as paystore
from portal.store.positions import invoice_positions, position_entries

AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
AFTER = AS_OF + timedelta(hours=1)


def test_a_database_from_before_positions_gets_its_payments_journaled_and_every_position_stored(store, settings,
                                                                                                export_dir):
    """An upgraded database has payments but no journal and no stored positions: Store.migrate writes them."""
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    invoice = next(i for i in ledger.invoices.values() if i.balance > 100)
    at = ledger.as_of + timedelta(hours=1)
    with store.begin() as conn:
        paystore.insert_attempt(conn, {
            "attempt_id": "pa_old", "customer_id": invoice.customer_id, "status": "succeeded", "method": "card",
            "currency": invoice.currency, "subtotal": 100, "adjustment": 0, "amount": 100, "created_at": at,
            "updated_at": at, "counted_at": at}, [{"invoice_id": invoice.invoice_id, "number": invoice.number,
                                                   "amount": 100, "applied": 100}])
        paystore.insert_attempt(conn, {
            "attempt_id": "pa_back", "customer_id": invoice.customer_id, "status": "refunded", "method": "card",
            "currency": invoice.currency, "subtotal": 50, "adjustment": 0, "amount": 50, "refunded": 50,
            "created_at": at, "updated_at": at + timedelta(hours=1), "counted_at": at},
            [{"invoice_id": invoice.invoice_id, "number": invoice.number, "amount": 50, "applied": 50}])
        conn.execute(delete(invoice_positions))
    store.migrate()
    with store.begin() as conn:
        assert stored_positions.stored(conn) == stored_positions.recomputed(conn)
        assert len(stored_positions.stored(conn)) == len(ledger.invoices)
        kinds = conn.execute(select(position_entries.c.attempt_id, position_entries.c.kind,
                                    position_entries.c.settled)
                             .order_by(position_entries.c.entry_id)).all()
        now = position.of_invoices(conn, [invoice.invoice_id])[invoice.invoice_id]
    # The refunded one was paid when it counted and given back since: the statement can say both.
    assert sorted(tuple(k) for k in kinds) == [("pa_back", "refunded", -50), ("pa_back", "succeeded", 50),
                                               ("pa_old", "succeeded", 100)]
    assert now.open == invoice.balance - 100


def test_the_stored_positions_follow_an_import_that_changes_balances_closes_and_moves_as_of(store, settings,
                                                                                            export_dir):
    from dataclasses import replace

    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    with store.begin() as conn:
        assert stored_positions.stored(conn) == stored_positions.recomputed(conn)
    invoice = next(i for i in ledger.invoices.values() if i.balance > 100)
    with store.begin() as conn:
        paystore.insert_attempt(conn, {
            "attempt_id": "pa_1", "customer_id": invoice.customer_id, "status": "succeeded", "method": "card",
            "currency": invoice.currency, "subtotal": 100, "adjustment": 0, "amount": 100,
            "created_at": AFTER, "updated_at": AFTER, "counted_at": AFTER},
            [{"invoice_id": invoice.invoice_id, "number": invoice.number, "amount": 100, "applied": 100}])
        stored_positions.record_change(conn, "pa_1", ledger.as_of + timedelta(hours=1))
        assert stored_positions.stored(conn)[invoice.invoice_id][1] == invoice.balance - 100
    gone = sorted(i for i in ledger.invoices if i != invoice.invoice_id)[0]
    changed = replace(ledger, as_of=ledger.as_of + timedelta(hours=2),  # the export now has the payment
                      invoices={k: (replace(v, balance=v.balance - 100) if k == invoice.invoice_id else v)
                                for k, v in ledger.invoices.items() if k != gone})
    store.import_snapshot(changed)
    with store.begin() as conn:
        stored = stored_positions.stored(conn)
        assert stored == stored_positions.recomputed(conn)
        count = conn.execute(select(func.count()).select_from(invoice_positions)).scalar_one()
    assert stored[invoice.invoice_id][1] == invoice.balance - 100  # taken once, not twice
    assert stored[gone][:2] == ("closed", 0) and count == len(ledger.invoices)


def test_a_dispute_opened_and_resolved_moves_the_stored_position(store, settings, export_dir):
    from portal.disputes.service import resolve, submit_dispute

    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    invoice = next(i for i in ledger.invoices.values() if i.balance > 1000)
    submitted = submit_dispute(store, settings.replace(mail_url="outbox:outbox"), invoice.customer_id,
                               [invoice.invoice_id], {invoice.invoice_id: "5.00"}, "pricing", "Wrong price")
    with store.begin() as conn:
        assert stored_positions.stored(conn)[invoice.invoice_id][:3] == ("in dispute", invoice.balance, 500)
        assert stored_positions.stored(conn) == stored_positions.recomputed(conn)
    resolve(store, int(submitted.reference[2:]), "rejected", "As agreed.", "staff@example.com")
    with store.begin() as conn:
        assert stored_positions.stored(conn)[invoice.invoice_id][2] == 0
        assert stored_positions.stored(conn) == stored_positions.recomputed(conn)
        assert conn.execute(select(func.count()).select_from(position_entries)).scalar_one() == 0
