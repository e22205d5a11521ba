"""Receipt lines: every invoice's row of the receipts CSV export, kept ready-made on PostgreSQL.

The full export (every open invoice: 90,000 rows, 18 MB at the benchmark's size) took about 380 ms on the
server when it joined invoices, customers and the rollup and formatted twenty cells per row on every request.
Here each invoice's line is stored already formatted, in three parts around the one cell that changes by
itself (days overdue, which depends on today):

    head           = customer_id,customer_name,...,due_date,      (from invoices and customers)
    position_cells = ,open,status                                  (from the stored positions)
    tail           = ,emails_sent,...,last_viewed_at,approved_at,approved_by\\n
                                                                   (from the receipt rollup and the approvals)

and the export is `head || days_overdue || position_cells || tail` in the table's order
(portal/staff/receipts_table.py, `receipts_csv`).

Who keeps the lines current (the only writers of their sources; the first and the last reach this module
through portal/store/derived.py, where it registers at its end):
- `Store.import_snapshot` (the only writer of invoices and customers) calls `sync` for the invoices it added,
  changed or closed, those whose positions it refreshed, and every invoice of a customer whose name, group or
  collector changed, in the import's transaction: their whole lines;
- `receiptrollup.refresh` calls `refresh_tails` for the keys it recomputed, in the refresh's transaction; an
  approval (portal/selfservice/approvals.py) records its `invoice_approved` event in the transaction that marks
  the request approved, so the next refresh (every receipts request starts with one) rewrites that invoice's
  tail, approval cells included;
- `stored.refresh` (the only writer of the stored positions) calls `sync_positions` for the invoices whose
  positions it wrote, in the transaction of the change (a payment event, a dispute).
The first two hold the rollup's refresh lock (the state row) while they write, so an import and a refresh never
interleave: each formats from data the other has committed. `sync_positions` writes only the position cells,
under the invoices' row locks that `stored.refresh` takes. A part is always recomputed whole from its
sources, never incremented, so writing one twice is harmless. Anything else that edits those tables (by hand,
a bulk load) must call `rebuild`; `Store.migrate` (run by every command) does when some invoice has no line.

PostgreSQL only: the cells are formatted by PostgreSQL (portal/staff/pgcsv.py). On SQLite the table exists but stays
empty, and the export is formatted in Python, which is fast enough at SQLite's scale. Cell for cell the lines
are what Python's csv module writes for the Python path's cells (tests/staff/test_receiptlines.py and
tests/staff/test_receipts_table.py compare the two byte for byte). The table itself is in
portal/store/staff.py, next to the rollup's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from functools import reduce
from typing import Any

from sqlalchemy import (
    String,
    case,
    cast,
    func,
    literal,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from portal.staff import pgcsv
from portal.staff.receiptlock import invoice_join, lock
from portal.store import approvals as store_approvals
from portal.store import derived
from portal.store.database import Store
from portal.store.positions import invoice_positions
from portal.store.staff import receipt_lines, receipt_rollup
from portal.store.tables import customers, events, invoices

HEAD_COLUMNS = ["customer_id", "customer_name", "group_name", "collector", "invoice_id", "number", "is_open",
                "currency", "amount", "balance", "due_date"]
ROLLUP_COLUMNS = ["emails_sent", "link_opened", "page_viewed", "documents_viewed", "first_sent_at",
                  "first_opened_at", "first_viewed_at", "last_viewed_at"]
APPROVAL_COLUMNS = ["approved_at", "approved_by"]  # the invoice's first approval (portal/store/approvals.py)
TAIL_COLUMNS = [*ROLLUP_COLUMNS, *APPROVAL_COLUMNS]
POSITION_COLUMNS = ["open", "status"]
COLUMNS = [*HEAD_COLUMNS, "days_overdue", *POSITION_COLUMNS, *TAIL_COLUMNS]  # = receipts_table.RECEIPT_COLUMNS (tested)

_R = receipt_rollup.c
_P = invoice_positions.c
_SYNC_CHUNK = 5000  # ids per statement when an import names them
_ALL_AT_ONCE = 20_000  # invoices named by one import above which every line is rewritten in one statement
_ANALYZE_AFTER = 10_000  # lines written by one import: refresh the planner's statistics


def _joined(fields: Iterable[Any]) -> Any:
    """CSV fields (pgcsv.csv_field, pgcsv.plain_field) separated by commas: a SQL text expression."""
    return reduce(lambda a, b: a + literal(",") + b, fields)


def _head(currencies: Iterable[str]) -> Any:
    inv, text, plain = invoices.c, pgcsv.text_cell, pgcsv.plain_field
    quoted = [pgcsv.csv_field(text(c)) for c in (inv.customer_id, customers.c.name, customers.c.group_name,
                                                 customers.c.collector, inv.invoice_id, inv.number)]
    return _joined([*quoted, plain(pgcsv.bool_cell(inv.is_open)), pgcsv.csv_field(text(inv.currency)),
                    plain(pgcsv.money_cell(inv.amount, inv.currency, currencies)),
                    plain(pgcsv.money_cell(inv.balance, inv.currency, currencies)),
                    plain(pgcsv.date_cell(inv.due_date))]) + literal(",")


def _position_cells(currencies: Iterable[str]) -> Any:
    """From the invoice's stored position (portal/balances/position.py), outer-joined as the Python path reads it: an
    invoice without one (never, once Store.migrate has run) has empty cells."""
    return (literal(",") + pgcsv.plain_field(pgcsv.money_cell(_P.open_amount, _P.currency, currencies))
            + literal(",") + pgcsv.csv_field(pgcsv.text_cell(_P.status)))


def _tail(customer_id: Any, invoice_id: Any) -> Any:
    """From the invoice's rollup row, outer-joined: an invoice without events has zeros and empty times; then its
    first approval (a subquery correlated to the line's `customer_id` and `invoice_id` columns): two empty cells
    when it has none."""
    counts = [cast(func.coalesce(_R[name], 0), String) for name in ROLLUP_COLUMNS[:4]]
    times = [pgcsv.plain_field(pgcsv.iso_cell(_R[name])) for name in ROLLUP_COLUMNS[4:]]
    approval = store_approvals.first_approval_text(
        customer_id, invoice_id,
        lambda at, by: pgcsv.plain_field(pgcsv.iso_cell(at)) + literal(",") + pgcsv.csv_field(pgcsv.text_cell(by)))
    return (literal(",") + _joined([*counts, *times]) + literal(",") + func.coalesce(approval, literal(","))
            + literal("\n"))


def days_overdue(is_open: Any, due_date: Any, today: Any) -> Any:
    """The spliced cell, receipts_table._days_overdue in SQL (`today` a date expression): days past due of an open
    invoice, 0 when not due yet or closed."""
    return cast(case((is_open, func.greatest(0, today - due_date)), else_=0), String)


def _prepare(conn: Connection) -> None:
    """Lock out refreshes and imports until this transaction ends (see the module docstring), and pin the
    text form of dates and times the cells are made from (pgcsv.iso_cell, pgcsv.date_cell)."""
    lock(conn)
    conn.exec_driver_sql("SET LOCAL DateStyle = 'ISO, YMD'")


def _upsert(conn: Connection, where: Any) -> int:
    currencies = list(conn.execute(select(invoices.c.currency).distinct()).scalars())
    query = (select(invoices.c.invoice_id, invoices.c.customer_id, invoices.c.is_open, invoices.c.due_date,
                    _head(currencies).label("head"),
                    _tail(invoices.c.customer_id, invoices.c.invoice_id).label("tail"),
                    _position_cells(currencies).label("position_cells"))
             .select_from(invoices.outerjoin(customers, customers.c.customer_id == invoices.c.customer_id)
                          .outerjoin(receipt_rollup, invoice_join())
                          .outerjoin(invoice_positions, _P.invoice_id == invoices.c.invoice_id))
             .where(where))
    names = ["invoice_id", "customer_id", "is_open", "due_date", "head", "tail", "position_cells"]
    stmt = pg_insert(receipt_lines).from_select(names, query)
    stmt = stmt.on_conflict_do_update(index_elements=["invoice_id"],
                                      set_={c: stmt.excluded[c] for c in names[1:]})
    return max(conn.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount or 0, 0)


def sync(conn: Connection, invoice_ids: Iterable[str], customer_ids: Iterable[str]) -> int:
    """Recompute the lines of `invoice_ids` and of every invoice of `customer_ids`, in the caller's transaction
    (the import's). PostgreSQL only: a no-op elsewhere. Returns the lines written."""
    if conn.dialect.name != "postgresql":
        return 0
    invoice_ids, customer_ids = sorted(set(invoice_ids)), sorted(set(customer_ids))
    if not invoice_ids and not customer_ids:
        return 0
    _prepare(conn)
    if len(invoice_ids) >= _ALL_AT_ONCE:
        # A first import: one statement over every invoice beats 20 lists of 5,000 ids (measured on a first
        # import of 100,000 invoices: the lines add 0.6 to 0.7 s to it instead of 2.9 to 3.7 s).
        written = _upsert(conn, true())
        _analyze(conn)
        return written
    written = 0
    for start in range(0, len(invoice_ids), _SYNC_CHUNK):
        written += _upsert(conn, invoices.c.invoice_id.in_(invoice_ids[start:start + _SYNC_CHUNK]))
    for start in range(0, len(customer_ids), _SYNC_CHUNK):
        written += _upsert(conn, invoices.c.customer_id.in_(customer_ids[start:start + _SYNC_CHUNK]))
    if written >= _ANALYZE_AFTER:
        _analyze(conn)
    return written


def _analyze(conn: Connection) -> None:
    """Fresh statistics after many lines were written (a first import, a rebuild). Without them, until
    autovacuum gets to the table, the planner guessed a plan that made a filtered export 2 to 3 times
    slower (measured: 314 ms instead of about 100 at 100,000 invoices)."""
    conn.exec_driver_sql("ANALYZE receipt_lines")


def refresh_tails(conn: Connection, touched: Any | None) -> None:
    """Recompute the tails of the invoices whose rollup rows the refresh in this transaction recomputed:
    those of the (customer_id, invoice_id) keys of the events matching `touched` (every key when None).
    The caller holds the refresh lock. PostgreSQL only: a no-op elsewhere."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql("SET LOCAL DateStyle = 'ISO, YMD'")
    lines = receipt_lines.c
    stmt = (update(receipt_lines).values(tail=_tail(lines.customer_id, lines.invoice_id))
            .where(_R.customer_id == lines.customer_id, _R.invoice_id == lines.invoice_id))
    if touched is not None:
        keys = select(events.c.customer_id, events.c.invoice_id).where(touched)
        stmt = stmt.where(tuple_(_R.customer_id, _R.invoice_id).in_(keys))
    conn.execute(stmt)


def sync_positions(conn: Connection, invoice_ids: Iterable[str] | None) -> None:
    """Recompute the position cells of `invoice_ids` (every line when None) from the stored positions, in the
    caller's transaction (portal/balances/position.py `refresh`, which wrote them). PostgreSQL only: a no-op
    elsewhere."""
    if conn.dialect.name != "postgresql":
        return
    ids = None if invoice_ids is None else sorted(set(invoice_ids))
    if ids == []:
        return
    lines = receipt_lines.c

    def update_lines(where: Any = None) -> None:
        # The cell's SQL has one branch per currency it may meet: only the currencies of the lines written, so a
        # payment event does not read the currency of every stored position (a whole-table scan per event).
        currencies = select(invoice_positions.c.currency).distinct()
        if where is not None:
            currencies = currencies.where(invoice_positions.c.invoice_id.in_(where))
        stmt = (update(receipt_lines).values(position_cells=_position_cells(conn.execute(currencies).scalars()))
                .where(_P.invoice_id == lines.invoice_id))
        conn.execute(stmt if where is None else stmt.where(lines.invoice_id.in_(where)))

    if ids is None:
        update_lines()
        return
    for start in range(0, len(ids), _SYNC_CHUNK):
        update_lines(ids[start:start + _SYNC_CHUNK])


def rebuild(store: Store) -> int:
    """Recompute every line (after the sources were edited other than by an import, or a bulk load).
    PostgreSQL only: returns 0 elsewhere."""
    if store.engine.dialect.name != "postgresql":
        return 0
    with store.begin() as conn:
        _prepare(conn)
        written = _upsert(conn, true())
        conn.execute(receipt_lines.delete().where(receipt_lines.c.invoice_id.not_in(select(invoices.c.invoice_id))))
        _analyze(conn)
    return written


def ensure_complete(store: Store, force: bool = False) -> int:
    """Rebuild every line when the number of lines is not the number of invoices (a database upgraded from
    before the lines, or invoices loaded in bulk), when a line lacks its position cells (upgraded from before the
    positions) or its approval cells (upgraded from before them), or with `force` (the positions were just
    rebuilt): cheap checks, not a proof of freshness.
    Returns the lines written (0 when complete, and always on SQLite)."""
    if store.engine.dialect.name != "postgresql":
        return 0
    if force:
        return rebuild(store)
    with store.begin() as conn:
        n_invoices = conn.execute(select(func.count()).select_from(invoices)).scalar_one()
        n_lines = conn.execute(select(func.count()).select_from(receipt_lines)).scalar_one()
        unpositioned = conn.execute(select(receipt_lines.c.invoice_id)
                                    .where(receipt_lines.c.position_cells == "").limit(1)).first()
        some_tail = conn.execute(select(receipt_lines.c.tail).limit(1)).scalar()
    complete = n_invoices == n_lines and unpositioned is None and _current_shape(some_tail)
    return 0 if complete else rebuild(store)


def _current_shape(tail: str | None) -> bool:
    """Whether a stored tail has this version's cells (one line stands for all: every writer writes whole tails of
    one shape, and a rebuild rewrites them all). A tail written before the approval cells is two cells short."""
    if tail is None:
        return True
    return len(next(csv.reader(io.StringIO(tail)))) == 1 + len(TAIL_COLUMNS)  # the first cell: before its comma


# Every import and every write of stored positions brings the lines along, and every migration
# completes them (portal/store/derived.py).
derived.follow(derived.Follower(
    "receipt_lines",
    after_import=lambda conn, change: sync(conn, change.refreshed, change.renamed),
    ensure_complete=lambda store, rebuilt_before: ensure_complete(store, force=rebuilt_before) > 0,
    after_positions=sync_positions))
