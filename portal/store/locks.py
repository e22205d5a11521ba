"""One run at a time of each mail command (`portal send`, `remind`, `digest`).

A run records each message right after the transport accepted it, so two runs of the same command started
together (a slow run still going when cron starts the next, or two operators) would both see the same
invoices as unsent and both mail them. Each command therefore holds a lock for its whole run, and a second
run refuses to start instead of waiting (cron would otherwise stack runs up behind a stuck one):
- PostgreSQL: a session advisory lock on a connection held for the run, so it covers every machine that
  uses the database, and ends with the process if it dies;
- SQLite: an exclusive `flock` on a file beside the database (SQLite is one machine's file anyway); the
  kernel drops it with the process.
Dry runs send and record nothing and take no lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from portal.store.database import Store

LOCK_NAMESPACE = "ar-portal run"


class RunInProgress(Exception):
    """Another run of the same command holds the lock."""


def _advisory_key(name: str) -> int:
    # pg_advisory_lock takes one signed 64-bit key: the first 8 bytes of a hash of a name no other
    # application sharing the database would use.
    digest = hashlib.sha256(f"{LOCK_NAMESPACE}: {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_lock_path(store: Store, name: str) -> Path | None:
    """The lock file beside a SQLite database file; None for an in-memory database (one process only)."""
    database = store.engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.{name}.lock")


@contextmanager
def exclusive_run(store: Store, name: str) -> Iterator[None]:
    """Hold the lock for `name` while the block runs; raise RunInProgress at once if another run holds it."""
    if store.engine.dialect.name == "postgresql":
        key = _advisory_key(name)
        with store.engine.connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one():
                raise RunInProgress(name)
            conn.commit()  # the lock belongs to the session, not to this transaction
            try:
                yield
            finally:
                # The connection goes back to the pool, whose session would keep the lock: release it here.
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
        return
    path = sqlite_lock_path(store, name)
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(name) from None
        yield
    finally:
        os.close(fd)  # also releases the flock
