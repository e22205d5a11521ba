"""The webhook's hot path to the database: check a token's customer and record its receipt in one statement.

Every emailed link and every page beacon checks the customer (active, at the token's key version, owning the
invoice the token names) and records one event. Through SQLAlchemy Core (`Store.access` + `Store.add_event`
in a transaction) that cost about 100 us per request, most of it in building execution contexts and result
objects; here it is one `INSERT ... SELECT ... RETURNING` through the DBAPI driver (about 35 us on SQLite,
one round trip on PostgreSQL). The rest of the store keeps SQLAlchemy.

Safety, unchanged or stronger than before:
- nothing is cached: every request reads the customer's current key version, so `portal revoke` takes effect
  on the very next request;
- the check is the INSERT's own WHERE clause, so check and insert are one atomic statement: a revocation
  committed a moment earlier records nothing, and none can slip in between;
- the statement runs in autocommit mode: when `record_if_current` returns, the row is committed (on SQLite
  with the WAL and synchronous=NORMAL that every `Store` connection gets), so the caller may answer.
When nothing is recorded the caller asks `Store.access` why (rare: a rejected token), for its security log.

Connections: a small per-process pool of DBAPI connections taken from the Store's engine (so SQLite gets the
same pragmas and PostgreSQL the same connect arguments) and detached from it. They are opened lazily, on first
use, so gunicorn workers open their own; a forked child also forgets any its parent opened, without closing
them (closing a PostgreSQL connection in the child would end the parent's session, and SQLite forbids using a
connection across fork). `Store.close()` (engine dispose) closes them.
"""

from __future__ import annotations

import os
import weakref
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import event

from .store import Store, StoreUnavailable

# The same conditions as Store.access: the customer exists, is active and is at the token's key version. The
# invoice recorded is the token's when it is this customer's, else '' (a token never reaches another
# customer's invoice). RETURNING says whether a row was written, and the invoice's open state for the redirect.
_RECORD = (
    "INSERT INTO events (kind, occurred_at, customer_id, contact_id, invoice_id, document_id, ip, user_agent,"
    " detail)"
    " SELECT ?, ?, c.customer_id, ?, COALESCE(i.invoice_id, ''), '', ?, ?, ? FROM customers c"
    " LEFT JOIN customer_keys k ON k.customer_id = c.customer_id"
    " LEFT JOIN invoices i ON i.invoice_id = ? AND i.customer_id = c.customer_id"
    " WHERE c.customer_id = ? AND c.active AND COALESCE(k.key_version, 1) = ?{required}"
    " RETURNING invoice_id, (SELECT o.is_open FROM invoices o WHERE o.invoice_id = events.invoice_id)"
)
_INVOICE_REQUIRED = " AND i.invoice_id IS NOT NULL"

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
        self._sql = {}
        for required in (False, True):
            sql = _RECORD.format(required=_INVOICE_REQUIRED if required else "")
            self._sql[required] = sql if self._sqlite else sql.replace("?", "%s")
        self._idle: list[tuple[Any, Any]] = []  # (connection, cursor); list.pop/append are atomic
        _logs.add(self)
        event.listen(self.engine, "engine_disposed", self._on_dispose)

    def record_if_current(self, kind: str, customer_id: str, key_version: int, invoice_id: str = "", *,
                          require_invoice: bool = False, contact_id: str = "", ip: str = "", user_agent: str = "",
                          detail: str = "") -> Receipt | None:
        """Record `kind` only if the customer is active at `key_version` (and, with `require_invoice`,
        `invoice_id` is its invoice). The row is committed when this returns a Receipt; None: nothing
        was recorded (unknown, inactive or revoked customer, or not its invoice)."""
        params = (kind, self._now(), contact_id, ip, user_agent, detail, invoice_id, customer_id, key_version)
        conn, cursor = self._checkout()
        try:
            cursor.execute(self._sql[require_invoice], params)
            # Step to the end: on SQLite the autocommit transaction (and the write lock) ends with the
            # statement. A worker waiting for that lock waits as the Store's busy_timeout says.
            rows = cursor.fetchall()
        except self._error as exc:
            self._discard(conn)
            raise StoreUnavailable(f"database error ({self.dialect}): {exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        except BaseException:
            self._discard(conn)
            raise
        self._idle.append((conn, cursor))
        if not rows:
            return None
        recorded_invoice, is_open = rows[0]
        return Receipt(recorded_invoice, bool(is_open))

    def close(self) -> None:
        while self._idle:
            conn, _ = self._idle.pop()
            self._discard(conn)

    # --- internals ---------------------------------------------------------------------------------------

    def _now(self) -> Any:
        now = datetime.now(UTC).replace(tzinfo=None)
        # SQLite: the text SQLAlchemy's DateTime stores (always with microseconds, so values sort and compare
        # as text); PostgreSQL: a naive UTC timestamp, as portal.store.UTCDateTime binds it.
        return now.isoformat(" ", timespec="microseconds") if self._sqlite else now

    def _checkout(self) -> tuple[Any, Any]:
        try:
            return self._idle.pop()
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
            conn.isolation_level = None  # autocommit: the statement is its own transaction
        else:
            conn.rollback()  # a pooled connection may have been left in a transaction by the pool's ping
            conn.autocommit = True
        return conn, conn.cursor()

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
