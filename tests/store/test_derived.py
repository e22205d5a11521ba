"""The derived tables follow their sources in the changing transaction, through portal/store/derived.py: the import
calls the positions' follower, then the receipt lines', with what it changed; a rewrite of stored positions calls
the lines'; a change while a follower is missing is refused and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.balances import stored
from portal.export.reader import read_export
from portal.store import derived
from portal.store.positions import invoice_positions
from portal.store.tables import invoices, snapshots


@pytest.fixture
def calls(monkeypatch) -> list[tuple]:
    """Every call the store makes to a follower, in order; each follower still does its work."""
    seen: list[tuple] = []
    for table, follower in list(derived._followers.items()):
        def after_import(conn, change, table=table, follower=follower):
            seen.append((table, "import", set(change.refreshed)))
            follower.after_import(conn, change)

        def after_positions(conn, ids, table=table, follower=follower):
            seen.append((table, "positions", ids))
            if follower.after_positions is not None:
                follower.after_positions(conn, ids)

        monkeypatch.setitem(derived._followers, table, derived.Follower(
            table, after_import, follower.ensure_complete, after_positions))
    return seen


def test_an_import_brings_the_positions_then_the_lines_along(store, settings, export_dir, calls):
    ledger = read_export(export_dir, settings)
    store.import_snapshot(ledger)
    # Positions first (nothing refreshed yet), then the lines, handed every invoice the positions rewrote.
    assert calls == [("invoice_positions", "import", set()), ("receipt_lines", "import", set(ledger.invoices))]
    with store.begin() as conn:
        assert stored.stored(conn) == stored.recomputed(conn)
        assert len(stored.stored(conn)) == len(ledger.invoices)


def test_rewritten_positions_bring_the_lines_along(store, settings, export_dir, calls):
    store.import_snapshot(read_export(export_dir, settings))
    calls.clear()
    with store.begin() as conn:
        stored.refresh(conn, ["I000002", "I000001"])
    assert ("receipt_lines", "positions", ["I000001", "I000002"]) in calls


@pytest.mark.parametrize("missing", derived.DERIVED)
def test_an_import_without_a_follower_is_refused_and_writes_nothing(store, settings, export_dir, monkeypatch,
                                                                     missing):
    monkeypatch.delitem(derived._followers, missing)
    with pytest.raises(derived.DerivedTableUnmaintained, match=f"{missing}.*{derived.FOLLOWER_MODULES[missing]}"):
        store.import_snapshot(read_export(export_dir, settings))
    with store.begin() as conn:
        for table in (snapshots, invoices, invoice_positions):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_only_a_derived_table_can_be_followed():
    with pytest.raises(ValueError, match="not a derived table"):
        derived.follow(derived.Follower("invoices", lambda conn, change: None, lambda store, rebuilt: False))
