"""The webhook's hot path to the database: check a token's customer and record its receipt, atomically.

Every emailed link and every page beacon checks the customer (active, at the token's key version, owning the
invoice the token names) and records one event. Through SQLAlchemy Core (`Store.access` + `Store.add_event`
in a transaction) that cost about 100 us per request in-process on SQLite, most of it building execution
contexts and result objects. Here it goes through the DBAPI driver, one way per database, each the cheaper
one measured there:
- PostgreSQL: one `INSERT ... SELECT ... WHERE <checks> RETURNING ...` in autocommit mode, one round trip
  (instead of BEGIN, SELECT, INSERT, COMMIT);
- SQLite: `BEGIN IMMEDIATE`, the lookup, a plain INSERT, `COMMIT` (about 40-50 us). The single statement
  costs 25-30 us more on SQLite, whose RETURNING runs as a trigger program over a temporary table. The
  write lock is waited for here in short steps rather than by SQLite's busy handler (see _begin_immediate).
The rest of the store keeps SQLAlchemy.

Safety, unchanged or stronger than before:
- nothing is cached: every request reads the customer's current key version, so `portal revoke` takes effect
  on the very next request;
- check and insert are atomic: one statement on PostgreSQL, a transaction holding SQLite's write lock from
  its start (BEGIN IMMEDIATE) on SQLite, so no revocation can be committed between them;
- when `record_if_current` returns a Receipt, the row is committed (on SQLite with the WAL and
  synchronous=NORMAL that every `Store` connection gets), so the caller may answer.
When nothing is recorded the caller asks `Store.access` why (rare: a rejected token), for its security log.

Connections: a small per-process pool of DBAPI connections taken from the Store's engine (so SQLite gets the
same pragmas and PostgreSQL the same connect arguments) and detached from it. They are opened lazily, on first
use, so gunicorn workers open their own; a forked child also forgets any its parent opened, without closing
them (closing a PostgreSQL connection in the child would end the parent's session, and SQLite forbids using a
connection across fork). `Store.close()` (engine dispose) closes them. A PostgreSQL connection idle for
PING_AFTER_IDLE_SECONDS is checked with one round trip before use, so sessions a database restart ended while
idle are replaced instead of failing a request.
"""

from __future__ import annotations

import os
import sqlite3
import time
import weakref
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import event

from portal.store.database import Store, StoreUnavailable

# PostgreSQL: the conditions of Store.access (the customer exists, is active and is at the token's key
# version) as the INSERT's own WHERE clause. The invoice recorded is the token's when it is this customer's,
# else '' (a token never reaches another customer's invoice). RETURNING says whether a row was written, and
# the invoice's open state for the redirect.
_RECORD = (
    "INSERT INTO events (kind, occurred_at, customer_id, contact_id, invoice_id, document_id, ip, user_agent,"
    " detail)"
    " SELECT %s, %s, c.customer_id, %s, COALESCE(i.invoice_id, ''), '', %s, %s, %s FROM customers c"
    " LEFT JOIN customer_keys k ON k.customer_id = c.customer_id"
    " LEFT JOIN invoices i ON i.invoice_id = %s AND i.customer_id = c.customer_id"
    " WHERE c.customer_id = %s AND c.active AND COALESCE(k.key_version, 1) = %s{required}"
    " RETURNING invoice_id, (SELECT o.is_open FROM invoices o WHERE o.invoice_id = events.invoice_id)"
)
_INVOICE_REQUIRED = " AND i.invoice_id IS NOT NULL"

# SQLite: the lookup of Store.access, then a plain insert, inside BEGIN IMMEDIATE ... COMMIT.
_SQLITE_ACCESS = (
    "SELECT c.active, k.key_version, i.is_open FROM customers c"
    " LEFT JOIN customer_keys k ON k.customer_id = c.customer_id"
    " LEFT JOIN invoices i ON i.invoice_id = ? AND i.customer_id = c.customer_id"
    " WHERE c.customer_id = ?"
)
_SQLITE_INSERT = (
    "INSERT INTO events (kind, occurred_at, customer_id, contact_id, invoice_id, document_id, ip, user_agent,"
    " detail) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?)"
)

SQLITE_BUSY = 5  # also the low byte of the extended busy codes
BUSY_SECONDS = 10.0  # how long to wait for the write lock: the Store's busy_timeout=10000
PING_AFTER_IDLE_SECONDS = 5.0  # a PostgreSQL connection idle this long is checked before use (see _alive)

# Connections a forked child inherited: kept referenced so the child never closes them (garbage collection
# would).
_inherited: list[Any] = []
_logs: weakref.WeakSet[EventLog] = weakref.WeakSet()


class Receipt(NamedTuple):
    """A recorded (and committed) event: the invoice id it carries ('' for none) and whether that is open."""

    invoice_id: str
    invoice_open: bool


class EventLog:
    """Guarded, committed inserts over raw driver connections. One per Store."""

    def __init__(self, store: Store):
        self.engine = store.engine
        self.dialect = self.engine.dialect.name
        self._sqlite = self.dialect == "sqlite"
        self._error = self.engine.dialect.loaded_dbapi.Error
        self._sql = {required: _RECORD.format(required=_INVOICE_REQUIRED if required else "")
                     for required in (False, True)}
        # (connection, cursor, when it was last used); list.pop/append are atomic
        self._idle: list[tuple[Any, Any, float]] = []
        _logs.add(self)
        event.listen(self.engine, "engine_disposed", self._on_dispose)

    def record_if_current(self, kind: str, customer_id: str, key_version: int, invoice_id: str = "", *,
                          require_invoice: bool = False, contact_id: str = "", ip: str = "", user_agent: str = "",
                          detail: str = "") -> Receipt | None:
        """Record `kind` only if the customer is active at `key_version` (and, with `require_invoice`,
        `invoice_id` is its invoice). The row is committed when this returns a Receipt; None: nothing
        was recorded (unknown, inactive or revoked customer, or not its invoice)."""
        conn, cursor = self._checkout()
        try:
            if self._sqlite:
                receipt = self._record_sqlite(conn, cursor, kind, customer_id, key_version, invoice_id,
                                              require_invoice, contact_id, ip, user_agent, detail)
            else:
                cursor.execute(self._sql[require_invoice], (kind, datetime.now(UTC).replace(tzinfo=None),
                                                            contact_id, ip, user_agent, detail, invoice_id,
                                                            customer_id, key_version))
                row = cursor.fetchone()
                receipt = None if row is None else Receipt(row[0], bool(row[1]))
        except self._error as exc:
            self._discard(conn)
            raise StoreUnavailable(f"database error ({self.dialect}): {exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        except BaseException:
            self._discard(conn)
            raise
        self._idle.append((conn, cursor, time.monotonic()))
        return receipt

    def close(self) -> None:
        while self._idle:
            conn, *_ = self._idle.pop()
            self._discard(conn)

    # --- internals ---------------------------------------------------------------------------------------

    def _record_sqlite(self, conn: Any, cursor: Any, kind: str, customer_id: str, key_version: int,
                       invoice_id: str, require_invoice: bool, contact_id: str, ip: str, user_agent: str,
                       detail: str) -> Receipt | None:
        # IMMEDIATE takes the write lock first (waiting as the Store's busy_timeout says): the lookup and the
        # insert then see one state, and the insert cannot fail on a snapshot another worker moved on from.
        # The text SQLAlchemy's DateTime stores: always with microseconds, so values compare as text.
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", timespec="microseconds")
        self._begin_immediate(cursor)
        try:
            cursor.execute(_SQLITE_ACCESS, (invoice_id, customer_id))
            row = cursor.fetchone()
            receipt = None
            if row is not None and row[0] and (row[1] or 1) == key_version and (
                    row[2] is not None or not require_invoice):
                receipt = Receipt(invoice_id if row[2] is not None else "", bool(row[2]))
                cursor.execute(_SQLITE_INSERT, (kind, now, customer_id, contact_id, receipt.invoice_id, ip,
                                                user_agent, detail))
            cursor.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        return receipt

    def _begin_immediate(self, cursor: Any) -> None:
        # SQLite's own busy handler sleeps 1 ms, then 2, 5, 10...: a worker that finds the other one holding
        # the write lock (some 40 us) would idle for a millisecond or more. BEGIN IMMEDIATE refused with
        # SQLITE_BUSY did nothing, so it is tried again after 0.1 ms, doubling up to 5 ms, for as long as the
        # Store's busy_timeout allows (measured: about 7% more links per second with two workers).
        delay, deadline = 0.0001, 0.0
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != SQLITE_BUSY:
                    raise
                now = time.monotonic()
                deadline = deadline or now + BUSY_SECONDS
                if now > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    def _checkout(self) -> tuple[Any, Any]:
        while self._idle:
            try:
                conn, cursor, last_used = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if self._sqlite or time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS or self._alive(cursor):
                return conn, cursor
            self._discard(conn)
        try:
            proxied = self.engine.raw_connection()
        except Exception as exc:
            raise StoreUnavailable(f"database error ({self.dialect}): cannot connect: "
                                   f"{exc.__class__.__name__}") from exc
        conn = proxied.driver_connection
        proxied.detach()  # ours from now on: the engine's pool neither reuses nor closes it
        if self._sqlite:
            conn.isolation_level = None  # no implicit transactions: _record_sqlite opens and ends its own
            conn.execute("PRAGMA busy_timeout=0")  # waiting for the write lock is _begin_immediate's
        else:
            conn.rollback()  # a pooled connection may have been left in a transaction by the pool's ping
            conn.autocommit = True  # the one statement is its own transaction
        return conn, conn.cursor()

    def _alive(self, cursor: Any) -> bool:
        # A PostgreSQL connection left idle may have been ended by the server (a restart, a failover, an idle
        # timeout) without our knowing: the guarded INSERT on it would fail and the request answer 503. One
        # round trip first, only after a pause, so a busy worker never pays it.
        try:
            cursor.execute("SELECT 1")
            return True
        except self._error:
            return False

    def _discard(self, conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped either way
            pass

    def _on_dispose(self, _engine: Any) -> None:
        self.close()

    def _forget_after_fork(self) -> None:
        _inherited.extend(self._idle)
        self._idle = []


def _after_fork_in_child() -> None:
    for log in list(_logs):
        log._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
