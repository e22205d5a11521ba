"""The webhook's hot path to the database: check a token's customer and record its receipt, through the driver.

Every emailed link (and every page beacon) runs one lookup and one insert. Through SQLAlchemy Core those two
statements and the commit cost about 100 us per request, most of it building execution contexts and result
objects; through the DBAPI driver directly they cost about 40 us (measured in-process on SQLite). The rest of
the store keeps SQLAlchemy: this module holds two statements, written once for SQLite and PostgreSQL.

Safety, unchanged from `Store.access` + `Store.add_event`:
- nothing is cached: every request reads the customer's current key version, so `portal revoke` takes effect
  on the very next request;
- the INSERT repeats the check in its own WHERE clause (`INSERT ... SELECT ... WHERE key_version = ?`), so a
  revocation committed between the lookup and the insert records nothing (the statement is atomic on both
  databases, where a separate SELECT then INSERT was not);
- each statement runs in autocommit mode: when `record_if_current` returns True the row is committed (WAL +
  synchronous=NORMAL on SQLite, as every connection of `Store` is set up), so the caller may answer.

Connections: a small per-process pool of DBAPI connections taken from the Store's engine (so SQLite gets the
same pragmas, PostgreSQL the same connect arguments) and detached from it. They are opened lazily, on first
use, and a forked child (gunicorn worker) forgets the ones its parent opened without closing them: closing a
PostgreSQL connection in the child would end the parent's session, and SQLite forbids carrying a connection
across fork. `Store.close()` (engine dispose) closes them.
"""

from __future__ import annotations

import os
import weakref
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from .store import InvoiceState, Store, StoreUnavailable

_ACCESS = (
    "SELECT c.active, k.key_version, i.number, i.is_open FROM customers c"
    " LEFT JOIN customer_keys k ON k.customer_id = c.customer_id"
    " LEFT JOIN invoices i ON i.invoice_id = ? AND i.customer_id = c.customer_id"
    " WHERE c.customer_id = ?"
)
# The same conditions as _ACCESS, inside the INSERT: the row exists only if the key is still current. The
# invoice id recorded is the token's when the invoice is this customer's, else '' (as the routes did).
_INSERT = (
    "INSERT INTO events (kind, occurred_at, customer_id, contact_id, invoice_id, document_id, ip, user_agent,"
    " detail)"
    " SELECT ?, ?, c.customer_id, ?, COALESCE(i.invoice_id, ''), '', ?, ?, ? FROM customers c"
    " LEFT JOIN customer_keys k ON k.customer_id = c.customer_id"
    " LEFT JOIN invoices i ON i.invoice_id = ? AND i.customer_id = c.customer_id"
    " WHERE c.customer_id = ? AND c.active AND COALESCE(k.key_version, 1) = ?"
)
_INVOICE_REQUIRED = " AND i.invoice_id IS NOT NULL"

# Connections a forked child inherited: kept referenced so they are never closed (or garbage-collected,
# which closes them) in the child.
_inherited: list[Any] = []
_logs: weakref.WeakSet[EventLog] = weakref.WeakSet()


class EventLog:
    """`access` + guarded insert over raw driver connections. One per process per database."""

    def __init__(self, store: Store):
        self.engine = store.engine
        self.dialect = self.engine.dialect.name
        self._sqlite = self.dialect == "sqlite"
        self._error = self.engine.dialect.loaded_dbapi.Error
        qmark = self._sqlite
        self._access_sql = _ACCESS if qmark else _ACCESS.replace("?", "%s")
        self._insert_sql = {required: (sql if qmark else sql.replace("?", "%s"))
                            for required, sql in ((False, _INSERT), (True, _INSERT + _INVOICE_REQUIRED))}
        self._idle: list[tuple[Any, Any]] = []  # (connection, cursor); list.pop/append are atomic
        _logs.add(self)
        event.listen(self.engine, "engine_disposed", self._on_dispose)

    def record_if_current(self, kind: str, customer_id: str, key_version: int, invoice_id: str = "", *,
                          require_invoice: bool = False, contact_id: str = "", ip: str = "", user_agent: str = "",
                          detail: str = "") -> tuple[int | None, InvoiceState | None, bool]:
        """Record `kind` for the customer only if it is active at `key_version` (and, with `require_invoice`,
        `invoice_id` is its invoice). Returns (current key version or None when unknown or inactive, the
        invoice when it is this customer's, whether the row was written and committed)."""
        conn, cursor, reused = self._checkout()
        try:
            try:
                version, invoice = self._access(cursor, customer_id, invoice_id)
            except self._error:
                if not reused or self._sqlite:
                    raise
                # A pooled PostgreSQL connection the server has dropped (restart, idle timeout): nothing was
                # written yet, so the lookup is retried once on a new connection.
                self._discard(conn)
                conn, cursor, _ = self._checkout(fresh=True)
                version, invoice = self._access(cursor, customer_id, invoice_id)
            recorded = False
            if version == key_version and (invoice is not None or not require_invoice):
                cursor.execute(self._insert_sql[require_invoice], (
                    kind, self._now(), contact_id, ip, user_agent, detail, invoice_id, customer_id, key_version))
                recorded = cursor.rowcount == 1
        except self._error as exc:
            self._discard(conn)
            raise StoreUnavailable(f"database error ({self.dialect}): {exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        except BaseException:
            self._discard(conn)
            raise
        self._idle.append((conn, cursor))
        return version, invoice, recorded

    def close(self) -> None:
        while self._idle:
            conn, _ = self._idle.pop()
            self._discard(conn)

    # --- internals ---------------------------------------------------------------------------------------

    def _access(self, cursor: Any, customer_id: str, invoice_id: str) -> tuple[int | None, InvoiceState | None]:
        cursor.execute(self._access_sql, (invoice_id, customer_id))
        row = cursor.fetchone()
        if row is None or not row[0]:
            return None, None
        return row[1] or 1, None if row[2] is None else InvoiceState(invoice_id, row[2], bool(row[3]))

    def _now(self) -> Any:
        now = datetime.now(UTC).replace(tzinfo=None)
        # SQLite: the text SQLAlchemy's DateTime stores (always with microseconds, so values sort and compare
        # as text); PostgreSQL: a naive UTC timestamp, as portal.store.UTCDateTime binds it.
        return now.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else now

    def _checkout(self, fresh: bool = False) -> tuple[Any, Any, bool]:
        if not fresh:
            try:
                conn, cursor = self._idle.pop()
                return conn, cursor, True
            except IndexError:
                pass
        try:
            proxied = self.engine.raw_connection()
        except Exception as exc:
            raise StoreUnavailable(f"database error ({self.dialect}): cannot connect: "
                                   f"{exc.__class__.__name__}") from exc
        conn = proxied.driver_connection
        proxied.detach()  # ours from now on: the engine's pool neither reuses nor closes it
        if self._sqlite:
            conn.isolation_level = None  # autocommit: each statement is its own transaction
        else:
            conn.autocommit = True
        return conn, conn.cursor(), False

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
