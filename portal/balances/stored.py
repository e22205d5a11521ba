"""The stored positions (`invoice_positions`, portal/store/positions.py): every invoice's position as THE rule
(portal/balances/rule.py) computes it, kept for the SQL readers that cannot run the rule per row (KPIs, the
receipts table's filters and sorts, the receipt lines).

Written only here (`refresh`, `after_import`, `rebuild`), in the transaction of every change that moves a
position: an import (this module follows it: portal/store/derived.py), a payment event (`record_change`), a
dispute opened or resolved. Every `refresh` announces itself (`derived.positions_written`), so the tables derived
from the positions follow in the same transaction; `rebuild` (every position at once) leaves them to be rebuilt
whole after it (`Store.migrate` does). Tests hold the stored rows equal to the recomputed ones (`stored` ==
`recomputed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from portal.balances.journal import entries, record_attempts
from portal.balances.position import latest_as_of, of_invoices
from portal.balances.rule import Inputs
from portal.store import derived
from portal.store import disputes as disputestore
from portal.store import payments as paystore
from portal.store.bulk import bulk_insert, chunks
from portal.store.database import Store
from portal.store.positions import invoice_positions, position_entries
from portal.store.tables import invoices

_BULK = 2000  # ids per statement
_FACTS = ("invoice_id", "customer_id", "currency", "due_date", "amount", "balance", "is_open")


def _store(conn: Connection, facts: list[tuple], whole: bool = False) -> int:
    """Compute the positions of the invoices in `facts` (tuples of _FACTS) and store them, replacing their rows
    (every row when `whole`: the facts are every invoice)."""
    if not facts:
        return 0
    ids = [f[0] for f in facts]
    many = whole or len(ids) > _BULK
    source = Inputs(entries(conn, invoice_ids=None if many else ids, item_kind="invoice"),
                    disputestore.disputed_amounts(conn, invoice_ids=None if many else ids))
    as_of = latest_as_of(conn)
    rows = []
    for invoice_id, customer_id, currency, due_date, amount, balance, is_open in facts:
        p = source.invoice(invoice_id, amount, balance, as_of, bool(is_open))
        rows.append((invoice_id, customer_id, currency, due_date, p.status, p.open, p.disputed, p.pending, p.paid))
    if whole:
        conn.execute(delete(invoice_positions))
    else:
        for part in chunks(sorted(ids), _BULK):
            conn.execute(delete(invoice_positions).where(invoice_positions.c.invoice_id.in_(part)))
    rows.sort()  # in key order: the primary key's index grows at one end
    bulk_insert(conn, invoice_positions, ("invoice_id", "customer_id", "currency", "due_date", "status",
                                          "open_amount", "disputed_amount", "pending_amount", "paid_amount"), rows)
    return len(rows)


def _facts(conn: Connection, ids: list[str] | None, lock: bool) -> list[tuple]:
    """The invoices' facts as stored (every invoice when `ids` is None), locked when `lock` (PostgreSQL)."""
    columns = [invoices.c[name] for name in _FACTS]
    if ids is None:
        return [tuple(r) for r in conn.execute(select(*columns))]
    found = []
    for part in chunks(sorted(ids), _BULK):
        query = select(*columns).where(invoices.c.invoice_id.in_(part)).order_by(invoices.c.invoice_id)
        found += [tuple(r) for r in conn.execute(query.with_for_update() if lock else query)]
    return found


def refresh(conn: Connection, invoice_ids: Iterable[str] | None, *, lines: bool = True, lock: bool = True) -> int:
    """Recompute and store the positions of `invoice_ids` (every invoice when None) in the caller's transaction,
    then (`lines`) let the tables derived from them follow: on PostgreSQL, the receipt lines' position cells
    (portal/store/derived.py). `lock`: lock the invoices first, so a concurrent change of the same invoice waits and
    then computes from what this one wrote. Returns rows written."""
    ids = None if invoice_ids is None else sorted(set(invoice_ids))
    if ids == []:
        return 0
    written = _store(conn, _facts(conn, ids, lock), whole=ids is None)
    if lines:
        derived.positions_written(conn, ids)
    return written


def after_import(conn: Connection, change: derived.Imported) -> None:
    """The import's part (in its transaction, after its snapshot row): the positions of the invoices it added or
    changed (their facts taken from the ledger, the export in memory), of those it closed, and of those with
    movements the move of as_of brings in or out of the export's balance. Adds every invoice id refreshed to
    `change.refreshed` (the receipt lines follow them whole)."""
    ledger, changed = change.ledger, change.changed
    since = change.new_as_of if change.old_as_of is None else min(change.old_as_of, change.new_as_of)
    pe = position_entries.c
    moved = set(conn.execute(select(pe.item_id).where(pe.item_kind == "invoice", pe.recorded_at > since)
                             .distinct()).scalars())
    facts = [(i.invoice_id, i.customer_id, i.currency, i.due_date, i.amount, i.balance, True)
             for iid in changed for i in (ledger.invoices[iid],)]
    # The import has already locked the rows it wrote; the others are locked against a concurrent payment.
    facts += _facts(conn, sorted((change.closed | moved) - changed), lock=True)
    whole = len(facts) >= _BULK and not conn.execute(select(invoice_positions.c.invoice_id).limit(1)).first()
    _store(conn, facts, whole=whole)  # whole: a first import, nothing to replace
    change.refreshed |= changed | change.closed | moved


def stored(conn: Connection, invoice_ids: Iterable[str] | None = None) -> dict[str, tuple]:
    """invoice id -> (status, open, disputed, pending, paid) as stored (tests compare it with `recomputed`)."""
    p = invoice_positions.c
    query = select(p.invoice_id, p.status, p.open_amount, p.disputed_amount, p.pending_amount, p.paid_amount)
    if invoice_ids is not None:
        query = query.where(p.invoice_id.in_(sorted(set(invoice_ids))))
    return {r[0]: tuple(r[1:]) for r in conn.execute(query)}


def recomputed(conn: Connection) -> dict[str, tuple]:
    """Every invoice's position from the rule, in `stored`'s shape."""
    return {iid: (p.status, p.open, p.disputed, p.pending, p.paid) for iid, p in of_invoices(conn).items()}


def rebuild(store: Store) -> int:
    """Bring the journal up to every attempt's state, then recompute every stored position (a database upgraded
    from before positions, or rows loaded in bulk). Returns the positions written."""
    with store.begin() as conn:
        record_attempts(conn, None)
        return refresh(conn, None, lines=False, lock=False)


def ensure_complete(store: Store) -> bool:
    """Rebuild when some invoice has no stored position or some counted attempt has no movement (a database
    upgraded from before the journal): two counts and an anti-join when all is well. True when it rebuilt."""
    pa, pe = paystore.payment_attempts.c, position_entries.c
    with store.begin() as conn:
        n_invoices = conn.execute(select(func.count()).select_from(invoices)).scalar_one()
        n_positions = conn.execute(select(func.count()).select_from(invoice_positions)).scalar_one()
        unjournaled = conn.execute(select(pa.attempt_id).where(
            pa.counted_at.is_not(None), ~select(pe.entry_id).where(pe.attempt_id == pa.attempt_id).exists())
            .limit(1)).first()
    if n_invoices == n_positions and unjournaled is None:
        return False
    rebuild(store)
    return True


def record_change(conn: Connection, attempt_id: str, at: datetime) -> None:
    """After an attempt changed (the Stripe event handler): its movements, then the positions they move."""
    refresh(conn, record_attempts(conn, [attempt_id], at))


# Every import, and every migration, brings the stored positions along (portal/store/derived.py).
derived.follow(derived.Follower("invoice_positions", after_import=after_import,
                                ensure_complete=lambda store, _rebuilt_before: ensure_complete(store)))
