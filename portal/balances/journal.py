"""The journal of money movements (`position_entries`, portal/store/positions.py), and what reads it.

Whenever a payment attempt changes, `record_attempts` writes, in the same transaction, the change of what it
settles and what it has pending on each invoice and credit note, dated: the difference between what the attempt
now does (portal/balances/rule.py, `attempt_effect`) and what the journal says it did. Movements are never
edited or deleted, so the journal is also the history the statement of account shows (portal/balances/statement.py)
and the cash application reads (`settled_by_attempt`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from portal.balances.rule import Entry, attempt_effect
from portal.store import payments as paystore
from portal.store.bulk import bulk_insert
from portal.store.positions import position_entries


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


def digests(conn: Connection) -> dict[str, str]:
    """customer id -> a token of its journal (a build re-renders a customer when it changes)."""
    pe = position_entries.c
    return {r[0]: f"{r[1]}:{r[2]}" for r in conn.execute(
        select(pe.customer_id, func.count(), func.max(pe.entry_id)).group_by(pe.customer_id))}

