"""What every staff table promises (portal/staff/paging.py): a sort only from its whitelist, and a page in one query
for its rows plus a count (payments and disputes: one more for the whole page's allocations or invoices)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from portal.staff import receipts_table
from portal.staff.customers_table import customer_timeline
from portal.staff.disputes_table import disputes_csv, disputes_page
from portal.staff.payments_table import payments_csv, payments_page
from portal.staff.receipts_table import ReceiptFilter, receipts_csv, receipts_page
from tests.conftest import AS_OF
from tests.staff_helpers import add_attempt, add_dispute

NOW = AS_OF


def test_unknown_sort_is_refused_everywhere(store, ledger):
    for call in (lambda: receipts_page(store, sort="amount; DROP TABLE invoices"),
                 lambda: receipts_csv(store, sort="nope"),
                 lambda: payments_page(store, sort="nope"), lambda: payments_csv(store, sort="nope"),
                 lambda: disputes_page(store, sort="nope"), lambda: disputes_csv(store, sort="nope"),
                 lambda: disputes_page(store, state="closed")):
        with pytest.raises(ValueError):
            call()


def test_pages_are_one_query_plus_a_count(store, ledger):
    add_attempt(store, "A1", sorted(ledger.customers)[0], "succeeded", 100)
    add_dispute(store, sorted(ledger.customers)[0], "open", 100, items=[("I1", "N-1", 100)])
    receipts_table.receipts_page(store, now=NOW)  # the rollup is current: refresh below reads only

    def selects(call) -> int:
        seen = []

        def count(conn, cursor, statement, *args):
            seen.append(statement)

        event.listen(store.engine, "before_cursor_execute", count)
        try:
            call()
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        return len(seen)

    for per_page in (1, 50):
        assert selects(lambda p=per_page: receipts_page(store, per_page=p, now=NOW, refresh=False)) == 2
        assert selects(lambda p=per_page: receipts_page(store, per_page=p, now=NOW, refresh=False,
                                                        sort="page_viewed")) == 2
        # Filtered through the rollup: the count comes with the rows, one statement in all.
        assert selects(lambda p=per_page: receipts_page(store, ReceiptFilter(unopened_days=1), per_page=p, now=NOW,
                                                        refresh=False)) == 1
        assert selects(lambda p=per_page: payments_page(store, per_page=p)) == 4  # + allocations + credits
        assert selects(lambda p=per_page: disputes_page(store, per_page=p)) == 3  # + invoices
        assert selects(lambda p=per_page: customer_timeline(store, "C00001", per_page=p)) == 3  # + customer
