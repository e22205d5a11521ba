"""An invoice's position: what it owes at a moment, and the status that follows. THE rule (DESIGN section 4).

Every output reads what this module computes and works out nothing of its own: the customer's pages and PDFs,
every email, the staff dashboard, `portal report` and the CSV exports. docs/balances.md explains the rule and
the decisions behind it. In short, per invoice:

    open     = the export's balance - what portal payments (and the credit notes used with them) moved after the
               export's as_of: money settled (succeeded, reinstated; a partial refund less what went back) and
               money on its way (a bank payment still processing); failed, expired, refunded and charged-back
               payments give it back. Never below zero, never above the invoice's amount.
    disputed = what unresolved disputes hold, at most `open`
    due      = open - disputed: the only amount the customer may be asked for
    status   = the first rule of STATUS_RULES that holds (closed, paid, in dispute, payment pending, partly paid,
               open); only ASKABLE statuses are ever asked for money

Money movements are kept in a journal (`position_entries`): whenever a payment attempt changes, `record_attempts`
writes, in the same transaction, the change of what it settles and what it has pending on each invoice and credit
note, dated. "After as_of" is judged per movement, so a refund after the export reopens what a payment before it
had paid; a movement recorded before as_of is assumed to be in the ERP's balance already.

SQL readers (KPIs, the receipts table's filters and sorts, the receipt lines) cannot run the rule per row, so each
invoice's position is also stored in `invoice_positions`, written only by `refresh` (here), in the transaction of
every change that moves it: an import, a payment event, a dispute opened or resolved. Tests hold the stored rows
equal to the recomputed ones. Money is integer minor units throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table, Text, delete, func, select
from sqlalchemy.engine import Connection

from portal.core.money import format_money
from portal.export.reader import Ledger
from portal.store import disputes as disputestore
from portal.store import payments as paystore
from portal.store.database import ID, Store, UTCDateTime, bulk_insert, invoices, metadata, snapshots

OPEN, PARTLY_PAID, PAYMENT_PENDING, PAID, IN_DISPUTE, CLOSED = (
    "open", "partly paid", "payment pending", "paid", "in dispute", "closed")
STATUS_TEXT = {OPEN: "Open", PARTLY_PAID: "Partly paid", PAYMENT_PENDING: "Payment pending", PAID: "Paid",
               IN_DISPUTE: "In dispute", CLOSED: "Closed"}
# The statuses under which the customer may be asked for money (invoice emails, reminders, the digest's "nobody
# viewed it"). Later statuses (promised, on hold) stay out of it unless added here.
ASKABLE = frozenset({OPEN, PARTLY_PAID})
GENERIC_FAILURE = "the payment failed"

# What an attempt's allocations do in each of its states. Any other state (created, failed, expired, refunded,
# disputed, and states added later) moves no money: nothing counts until a payment is settled or on its way.
SETTLING = frozenset({"succeeded", "reinstated", "partially_refunded"})
PENDING = frozenset({"processing"})

_SERIAL = BigInteger().with_variant(Integer, "sqlite")

position_entries = Table(
    "position_entries", metadata,
    Column("entry_id", _SERIAL, primary_key=True, autoincrement=True),
    Column("customer_id", String(ID), nullable=False),
    Column("item_kind", String(10), nullable=False),  # "invoice" or "credit"
    Column("item_id", String(ID), nullable=False),
    Column("attempt_id", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # the attempt's state the movement came with
    Column("method", String(20), nullable=False),
    Column("settled", BigInteger, nullable=False),  # change of the money settled on the item (signed)
    Column("pending", BigInteger, nullable=False),  # change of the money on its way (signed)
    Column("note", Text, nullable=False, default=""),  # why a payment failed or was charged back
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_position_entries_item_kind_item_id", "item_kind", "item_id"),
    Index("ix_position_entries_customer_id", "customer_id"),
    Index("ix_position_entries_attempt_id", "attempt_id"),
    Index("ix_position_entries_recorded_at", "recorded_at"),
)

invoice_positions = Table(
    "invoice_positions", metadata,
    Column("invoice_id", String(ID), primary_key=True),
    Column("customer_id", String(ID), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("due_date", Date, nullable=False),  # copied from the invoice: the KPIs' aging reads this table alone
    Column("status", String(20), nullable=False),
    Column("open_amount", BigInteger, nullable=False),
    Column("disputed_amount", BigInteger, nullable=False),
    Column("pending_amount", BigInteger, nullable=False),
    Column("paid_amount", BigInteger, nullable=False),
    # No secondary index: its readers scan it whole (KPIs) or join it by invoice id; each index would cost every
    # import (a first import of 100,000 invoices) another B-tree to fill.
)

_BULK = 2000  # ids per statement


@dataclass(frozen=True)
class Entry:
    """One movement of the journal, as the rule and the statement read it."""

    attempt_id: str
    item_id: str
    kind: str
    method: str
    settled: int
    pending: int
    note: str
    at: datetime
    entry_id: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    """An invoice at a moment. Amounts in minor units of the invoice's currency. Built without a status, it
    takes the first of STATUS_RULES that holds."""

    amount: int  # the invoice's total
    balance: int  # open as of the export
    paid: int  # settled in the portal after the export, net of what went back (negative: more went back)
    pending: int  # bank payments on their way now
    open: int  # still owed, not counting money on its way
    disputed: int  # held by unresolved disputes (part of `open`)
    status: str = ""
    failure: str = ""  # why the latest payment failed, while no later one counted

    def __post_init__(self) -> None:
        if not self.status:  # frozen: set once, here, as dataclasses document for derived fields
            object.__setattr__(self, "status", next(name for name, holds in STATUS_RULES if holds(self)))

    @property
    def due(self) -> int:
        """What may be asked for: open less what is in dispute."""
        return self.open - self.disputed

    @property
    def askable(self) -> bool:
        return self.status in ASKABLE

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, self.status.capitalize())


# First match wins. A later status (promised, on hold) is one more rule, inserted where it ranks.
STATUS_RULES: list[tuple[str, Callable[[Position], bool]]] = [
    (PAID, lambda p: p.open == 0 and p.pending == 0),
    (IN_DISPUTE, lambda p: p.disputed > 0),
    (PAYMENT_PENDING, lambda p: p.pending > 0),
    (PARTLY_PAID, lambda p: p.open < p.amount),
    (OPEN, lambda p: True),
]


def compute(amount: int, balance: int, as_of: datetime, entries: Iterable[Entry] = (), held: int = 0,
            is_open: bool = True) -> Position:
    """THE rule: the position of an invoice (or, reading `open`, what a credit note has available) from the
    export's amount and balance, the journal's movements of the item, and what unresolved disputes hold."""
    settled_after = pending_after = pending_now = 0
    failure, failed_at, counted_at = "", None, None
    for e in entries:
        pending_now += e.pending
        if e.at > as_of:
            settled_after += e.settled
            pending_after += e.pending
            if e.kind == "failed" and e.pending < 0:
                if failed_at is None or e.at >= failed_at:
                    failure, failed_at = e.note or GENERIC_FAILURE, e.at
            elif e.settled > 0 or e.pending > 0:
                counted_at = e.at if counted_at is None else max(counted_at, e.at)
    if failed_at is not None and counted_at is not None and counted_at > failed_at:
        failure = ""
    if not is_open:
        return Position(amount, balance, settled_after, 0, 0, 0, CLOSED)
    open_ = min(amount, max(0, balance - settled_after - pending_after))
    return Position(amount, balance, settled_after, max(0, pending_now), open_, min(max(0, held), open_), "", failure)


def attempt_effect(status: str, allocations: Iterable[tuple[str, int]], credits: Iterable[tuple[str, int]],
                   refunded: int, unapplied: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(item kind, item id) -> (settled, pending): what an attempt in `status` does to each invoice and credit note
    it names, from the amounts applied when it first counted. Money refunded (a partial refund, kept through a
    chargeback won later) gives back what no invoice took (unapplied cash) first, then the invoices' money from the
    last allocation back; credit notes stay used. A full refund or a chargeback moves nothing (not SETTLING)."""
    if status in PENDING:
        slot = 1
    elif status in SETTLING:
        slot = 0
    else:
        return {}
    effect: dict[tuple[str, str], tuple[int, int]] = {}
    back = max(0, refunded - unapplied)
    for invoice_id, applied in reversed(list(allocations)):
        take = min(applied, back)
        back -= take
        effect[("invoice", invoice_id)] = (applied - take, 0) if slot == 0 else (0, applied - take)
    for credit_id, applied in credits:
        effect[("credit", credit_id)] = (applied, 0) if slot == 0 else (0, applied)
    return effect


def unapplied_kept(status: str, refunded: int, unapplied: int) -> int:
    """What is left of an attempt's unapplied cash (that no invoice took) in `status`: refunds give it back first
    (as `attempt_effect` does)."""
    return max(0, unapplied - refunded) if status in SETTLING else 0


# --- the journal ----------------------------------------------------------------------------------------------


def record_attempts(conn: Connection, attempt_ids: Iterable[str] | None, at: datetime | None = None
                    ) -> set[str]:
    """Bring the journal in line with the attempts' current states (all attempts when None), in the caller's
    transaction: a movement for every difference between what an attempt now does to an item and what the journal
    says it did, dated `at` (default: the attempt's counted_at, for a backfill). Idempotent. Returns the invoice
    ids whose positions moved; the caller refreshes them (`refresh`)."""
    pa, al, cr, pe = (paystore.payment_attempts.c, paystore.payment_allocations.c, paystore.payment_credits.c,
                      position_entries.c)
    ids = None if attempt_ids is None else sorted(set(attempt_ids))
    if ids == []:
        return set()

    def only(query: Any, column: Any) -> Any:
        return query if ids is None else query.where(column.in_(ids))

    attempts = {r.attempt_id: r for r in conn.execute(only(select(paystore.payment_attempts), pa.attempt_id))}
    allocs: dict[str, list[tuple[str, int]]] = {}
    for r in conn.execute(only(select(al.attempt_id, al.invoice_id, al.applied), al.attempt_id)
                          .order_by(al.attempt_id, al.invoice_id)):
        allocs.setdefault(r.attempt_id, []).append((r.invoice_id, int(r.applied)))
    used: dict[str, list[tuple[str, int]]] = {}
    for r in conn.execute(only(select(cr.attempt_id, cr.credit_id, cr.applied), cr.attempt_id)
                          .order_by(cr.attempt_id, cr.credit_id)):
        used.setdefault(r.attempt_id, []).append((r.credit_id, int(r.applied)))
    have: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
    for r in conn.execute(only(select(pe.attempt_id, pe.item_kind, pe.item_id, func.sum(pe.settled),
                                      func.sum(pe.pending)), pe.attempt_id)
                          .group_by(pe.attempt_id, pe.item_kind, pe.item_id)):
        have.setdefault(r[0], {})[(r[1], r[2])] = (int(r[3]), int(r[4]))
    rows, moved = [], set()
    for attempt_id in sorted(attempts):
        a = attempts[attempt_id]
        mine, credited = allocs.get(attempt_id, ()), used.get(attempt_id, ())
        target = attempt_effect(a.status, mine, credited, int(a.refunded), int(a.unapplied))
        stages = [(a.status, target, at or a.counted_at or a.updated_at)]
        reversed_ = a.status in {"refunded", "disputed"}
        if at is None and a.counted_at is not None and not have.get(attempt_id) and reversed_:
            # A backfill of money that went back: it was paid when it first counted, and given back since.
            stages.insert(0, ("succeeded", attempt_effect("succeeded", mine, credited, 0, 0), a.counted_at))
        before = dict(have.get(attempt_id, {}))
        for status, effect, when in stages:
            note = a.failure_reason if status in {"failed", "disputed"} else ""
            for key in sorted(set(effect) | set(before)):
                settled, pending = effect.get(key, (0, 0))
                old_settled, old_pending = before.get(key, (0, 0))
                if (settled, pending) != (old_settled, old_pending):
                    rows.append((a.customer_id, key[0], key[1], attempt_id, status[:20], a.method,
                                 settled - old_settled, pending - old_pending, note or "", when))
                    before[key] = (settled, pending)
                    if key[0] == "invoice":
                        moved.add(key[1])
    bulk_insert(conn, position_entries, ("customer_id", "item_kind", "item_id", "attempt_id", "kind", "method",
                                         "settled", "pending", "note", "recorded_at"), rows)
    return moved


def entries(conn: Connection, customer_ids: Iterable[str] | None = None, invoice_ids: Iterable[str] | None = None,
            item_kind: str | None = None) -> dict[tuple[str, str], list[Entry]]:
    """(item kind, item id) -> its movements, oldest first."""
    pe = position_entries.c
    query = select(position_entries).order_by(pe.recorded_at, pe.entry_id)
    if customer_ids is not None:
        query = query.where(pe.customer_id.in_(sorted(set(customer_ids))))
    if invoice_ids is not None:
        query = query.where(pe.item_id.in_(sorted(set(invoice_ids))))
    if item_kind is not None:
        query = query.where(pe.item_kind == item_kind)
    result: dict[tuple[str, str], list[Entry]] = {}
    for r in conn.execute(query):
        result.setdefault((r.item_kind, r.item_id), []).append(Entry(
            r.attempt_id, r.item_id, r.kind, r.method, int(r.settled), int(r.pending), r.note, r.recorded_at,
            int(r.entry_id)))
    return result


def settled_by_attempt(conn: Connection) -> dict[tuple[str, str, str], int]:
    """(attempt id, item kind, item id) -> what the attempt has settled on the item now (the cash application)."""
    pe = position_entries.c
    return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(
        select(pe.attempt_id, pe.item_kind, pe.item_id, func.sum(pe.settled))
        .group_by(pe.attempt_id, pe.item_kind, pe.item_id))}


@dataclass
class Inputs:
    """What the rule needs besides the invoice itself, for some customers: their movements and dispute holds."""

    moves: dict[tuple[str, str], list[Entry]]
    held: dict[str, int]

    def invoice(self, invoice_id: str, amount: int, balance: int, as_of: datetime, is_open: bool = True) -> Position:
        return compute(amount, balance, as_of, self.moves.get(("invoice", invoice_id), ()),
                       self.held.get(invoice_id, 0), is_open)

    def credit_available(self, credit_id: str, amount: int, balance: int, as_of: datetime) -> int:
        return compute(amount, balance, as_of, self.moves.get(("credit", credit_id), ())).open


def inputs(conn: Connection, customer_ids: Iterable[str] | None = None) -> Inputs:
    ids = None if customer_ids is None else sorted(set(customer_ids))
    return Inputs(entries(conn, customer_ids=ids), disputestore.disputed_amounts(conn, customer_ids=ids))


def latest_as_of(conn: Connection) -> datetime:
    found = conn.execute(select(snapshots.c.as_of).order_by(snapshots.c.snapshot_id.desc()).limit(1)).scalar()
    return found or datetime.min.replace(tzinfo=UTC)


def of_invoices(conn: Connection, invoice_ids: Iterable[str] | None = None, customer_ids: Iterable[str] | None = None
                ) -> dict[str, Position]:
    """invoice id -> its position now, computed from the store (closed invoices too)."""
    inv = invoices.c
    query = select(inv.invoice_id, inv.amount, inv.balance, inv.is_open).order_by(inv.invoice_id)
    ids = None if invoice_ids is None else sorted(set(invoice_ids))
    if ids is not None:
        query = query.where(inv.invoice_id.in_(ids))
    if customer_ids is not None:
        query = query.where(inv.customer_id.in_(sorted(set(customer_ids))))
    rows = conn.execute(query).all()
    as_of = latest_as_of(conn)
    wanted = [r.invoice_id for r in rows]
    many = ids is None and customer_ids is None
    moves = entries(conn, invoice_ids=None if many else wanted, item_kind="invoice")
    held = disputestore.disputed_amounts(conn, invoice_ids=None if many else wanted)
    source = Inputs(moves, held)
    return {r.invoice_id: source.invoice(r.invoice_id, int(r.amount), int(r.balance), as_of, bool(r.is_open))
            for r in rows}


def standing(conn: Connection, named: Iterable[tuple[str, str, str]], locale: str = "en_US") -> tuple[str, ...]:
    """"INV-1: $40.00 open, partly paid" for each (invoice id, number, currency) named: what the payment and
    dispute emails say about where the invoices they name stand now."""
    named = list(named)
    now = of_invoices(conn, [invoice_id for invoice_id, _, _ in named])
    return tuple(f"{number}: {format_money(now[iid].open, currency, locale)} open, {now[iid].status}"
                 for iid, number, currency in named if iid in now)


# --- the stored positions ---------------------------------------------------------------------------------------


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
        for part in _chunks(sorted(ids), _BULK):
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
    for part in _chunks(sorted(ids), _BULK):
        query = select(*columns).where(invoices.c.invoice_id.in_(part)).order_by(invoices.c.invoice_id)
        found += [tuple(r) for r in conn.execute(query.with_for_update() if lock else query)]
    return found


def refresh(conn: Connection, invoice_ids: Iterable[str] | None, *, lines: bool = True, lock: bool = True) -> int:
    """Recompute and store the positions of `invoice_ids` (every invoice when None) in the caller's transaction,
    and, on PostgreSQL, their receipt lines' position cells (`lines`). `lock`: lock the invoices first, so a
    concurrent change of the same invoice waits and then computes from what this one wrote. Returns rows written."""
    ids = None if invoice_ids is None else sorted(set(invoice_ids))
    if ids == []:
        return 0
    written = _store(conn, _facts(conn, ids, lock), whole=ids is None)
    if lines:
        from portal.staff import receiptlines  # it builds on this module's table

        receiptlines.sync_positions(conn, ids)
    return written


def after_import(conn: Connection, ledger: Ledger, changed: set[str], closed: set[str], old_as_of: datetime | None,
                 new_as_of: datetime) -> set[str]:
    """The import's part (in its transaction, after its snapshot row): the positions of the invoices it added or
    changed (their facts taken from `ledger`, the export in memory), of those it closed, and of those with movements
    the move of as_of brings in or out of the export's balance. Returns every invoice id refreshed (the receipt
    lines follow them whole)."""
    since = new_as_of if old_as_of is None else min(old_as_of, new_as_of)
    pe = position_entries.c
    moved = set(conn.execute(select(pe.item_id).where(pe.item_kind == "invoice", pe.recorded_at > since)
                             .distinct()).scalars())
    facts = [(i.invoice_id, i.customer_id, i.currency, i.due_date, i.amount, i.balance, True)
             for iid in changed for i in (ledger.invoices[iid],)]
    # The import has already locked the rows it wrote; the others are locked against a concurrent payment.
    facts += _facts(conn, sorted((closed | moved) - changed), lock=True)
    whole = len(facts) >= _BULK and not conn.execute(select(invoice_positions.c.invoice_id).limit(1)).first()
    _store(conn, facts, whole=whole)  # whole: a first import, nothing to replace
    return changed | closed | moved


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


def digests(conn: Connection) -> dict[str, str]:
    """customer id -> a token of its journal (a build re-renders a customer when it changes)."""
    pe = position_entries.c
    return {r[0]: f"{r[1]}:{r[2]}" for r in conn.execute(
        select(pe.customer_id, func.count(), func.max(pe.entry_id)).group_by(pe.customer_id))}


def record_change(conn: Connection, attempt_id: str, at: datetime) -> None:
    """After an attempt changed (the Stripe event handler): its movements, then the positions they move."""
    refresh(conn, record_attempts(conn, [attempt_id], at))


__all__ = ["ASKABLE", "CLOSED", "IN_DISPUTE", "OPEN", "PAID", "PARTLY_PAID", "PAYMENT_PENDING", "STATUS_RULES",
           "STATUS_TEXT", "Entry", "Inputs", "Position", "after_import", "attempt_effect", "compute", "digests",
           "ensure_complete", "entries", "inputs", "invoice_positions", "of_invoices", "position_entries",
           "rebuild", "record_attempts", "record_change", "recomputed", "refresh", "settled_by_attempt", "standing",
           "stored", "unapplied_kept"]
