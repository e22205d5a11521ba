"""`portal db upgrade` (portal/cli/db.py): the schema, then the receipt rollup, built once and refreshed after."""

from __future__ import annotations

from portal.store.database import Store


def test_db_upgrade_builds_the_receipt_rollup_once(run, tmp_path, db_url):
    from sqlalchemy import func, select

    from portal.store.staff import receipt_rollup

    assert run("sample-data", "export", "--customers", "2", "--invoices", "4").exit_code == 0
    assert run("import", "export").exit_code == 0
    store = Store(db_url)
    inv = next(iter(store.customer_data())).invoices[0]
    store.record_event("page_viewed", inv.customer_id, invoice_id=inv.invoice_id)
    first = run("db", "upgrade")
    assert first.exit_code == 0 and "receipt rollup: built (1 new events)" in first.output
    with store.begin() as conn:
        row = conn.execute(select(receipt_rollup).where(receipt_rollup.c.invoice_id == inv.invoice_id)).one()
        assert conn.execute(select(func.count()).select_from(receipt_rollup)).scalar_one() == 1
    assert row.page_viewed == 1
    assert "receipt rollup: refreshed (0 new events)" in run("db", "upgrade").output
    store.close()
