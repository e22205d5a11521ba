"""The derived tables, and how they follow their sources in the transaction that changes them.

Two tables of the store are derived from others and must never lag them:

- `invoice_positions`: what each invoice owes now, computed by THE rule (portal/balances/rule.py) from the
  invoices, the position journal and the disputes (docs/balances.md);
- `receipt_lines`: the staff receipts export's ready-made CSV lines (portal/staff/receiptlines.py), from the
  invoices, the customers, the receipt rollup and the stored positions.

Their tables are the store's (portal/store/positions.py, portal/store/staff.py), but the code that computes them
belongs to the packages that own the rule and the export, above the store, which the store never imports
(README.md, Architecture). So that code registers here, once per process, when its module is imported
(`follow`), and the store calls it:

- `imported`: at the end of every import, in its transaction, in the order of `DERIVED` (positions first: the
  lines carry them);
- `positions_written`: whenever stored positions were rewritten (a payment event, a dispute), in that
  transaction, so the lines' position cells follow;
- `migrated`: after every `Store.migrate`, to complete what a database upgraded from before a derived table (or
  rows loaded in bulk) lacks.

A change while some derived table has no follower registered is refused with `DerivedTableUnmaintained`, in the
changing transaction (so nothing is written): a table left stale would answer wrongly without any error. Every
program that changes the store imports the followers first (the command line, the webhook, the tests' conftest,
the benchmarks), as `FOLLOWER_MODULES` names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from portal.core.errors import PortalError
from portal.export.model import Ledger

# In dependency order: the receipt lines read the stored positions.
DERIVED = ("invoice_positions", "receipt_lines")
# Where each derived table's follower is defined (importing the module registers it).
FOLLOWER_MODULES = {"invoice_positions": "portal.balances.stored", "receipt_lines": "portal.staff.receiptlines"}


@dataclass
class Imported:
    """What one import changed, handed to each derived table's follower in the import's transaction."""

    ledger: Ledger
    changed: set[str]  # invoice ids the import added or changed
    closed: set[str]  # invoice ids that left the export
    renamed: set[str]  # customer ids whose name, group or collector changed
    old_as_of: datetime | None  # the previous snapshot's as_of (None: the first import)
    new_as_of: datetime
    # Invoice ids whose stored positions the import rewrote: filled by the positions' follower, read by the
    # receipt lines' (they follow DERIVED's order).
    refreshed: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Follower:
    """How one derived table follows its sources. `ensure_complete(store, rebuilt_before)` completes the table
    after a migration (`rebuilt_before`: a table before it in DERIVED was rebuilt) and says whether it rebuilt."""

    table: str
    after_import: Callable[[Connection, Imported], None]
    ensure_complete: Callable[[Any, bool], bool]
    after_positions: Callable[[Connection, list[str] | None], None] | None = None


class DerivedTableUnmaintained(PortalError):
    """A source of a derived table changed in a program that did not load the table's follower."""


_followers: dict[str, Follower] = {}


def follow(follower: Follower) -> None:
    """Register (or replace) the follower of one derived table."""
    if follower.table not in DERIVED:
        raise ValueError(f"{follower.table} is not a derived table (one of {', '.join(DERIVED)})")
    _followers[follower.table] = follower


def _all() -> list[Follower]:
    missing = [table for table in DERIVED if table not in _followers]
    if missing:
        raise DerivedTableUnmaintained(
            "nothing keeps " + ", ".join(f"{t} current (import {FOLLOWER_MODULES[t]})" for t in missing)
            + ": the store was changed by a program that did not load it")
    return [_followers[table] for table in DERIVED]


def imported(conn: Connection, change: Imported) -> None:
    """The import's part, at its end, in its transaction."""
    for follower in _all():
        follower.after_import(conn, change)


def positions_written(conn: Connection, invoice_ids: list[str] | None) -> None:
    """The stored positions of `invoice_ids` (every invoice when None) were rewritten in this transaction."""
    for follower in _all():
        if follower.after_positions is not None:
            follower.after_positions(conn, invoice_ids)


def migrated(store: Any) -> None:
    """After `Store.migrate`: each derived table completes what it lacks, in DERIVED's order."""
    rebuilt = False
    for follower in _all():
        rebuilt = follower.ensure_complete(store, rebuilt) or rebuilt
