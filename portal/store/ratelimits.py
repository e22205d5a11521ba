"""Rate-limit counters in the store: one budget shared by every worker and every machine.

The webhook counts requests per client address and per token (webhook/ratelimit.py). Its default counters
live in each process's memory, which is right for one machine; behind a load balancer or on Lambda (where
every concurrent request may run in its own instance) they would not add up, and a leaked link could be
replayed once per instance. With `WEBHOOK_RATE_LIMIT_BACKEND=database` the same fixed windows are rows here:
each hit is one upsert that returns the window's count, atomic on PostgreSQL (ON CONFLICT row lock) and on
SQLite (its write lock). Expired rows are deleted now and then by whichever process comes along.

The staff login throttle (portal/staff/users.py) counts its attempts here too, under keys of its own: a hit
reserves an attempt before the password is checked, `give_back` returns it when the password was right.

Times are wall-clock epoch milliseconds (every machine's clock, unlike a monotonic one, counts the same
windows).
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, case, delete, update
from sqlalchemy.dialects import postgresql, sqlite

from portal.store.database import Store
from portal.store.tables import metadata

PRUNE_EVERY = 1000  # hits per process between two deletions of expired rows
PRUNE_AFTER_MS = 3_600_000  # rows whose window ended this long ago go (kept a while: clocks differ a little)

rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    Column("key", String(200), primary_key=True),  # "<scope>:<address or token reference>/<window seconds>"
    Column("window_end_ms", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False),
    Index("ix_rate_limit_hits_window_end_ms", "window_end_ms"),
)


class DatabaseRateLimitStore:
    """`webhook.ratelimit.RateLimitStore` over the store's database; `now` is epoch seconds (time.time)."""

    def __init__(self, store: Store):
        self.store = store
        self._insert = postgresql.insert if store.engine.dialect.name == "postgresql" else sqlite.insert
        self._hits = itertools.count(1)

    def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        now_ms = int(now * 1000)
        c = rate_limit_hits.c
        new = self._insert(rate_limit_hits).values(key=key[:200], window_end_ms=now_ms + window * 1000, hits=1)
        over = c.window_end_ms <= now_ms  # the stored window has ended: this hit starts a new one
        statement = new.on_conflict_do_update(
            index_elements=[c.key],
            set_={"hits": case((over, 1), else_=c.hits + 1),
                  "window_end_ms": case((over, new.excluded.window_end_ms), else_=c.window_end_ms)},
        ).returning(c.hits, c.window_end_ms)
        with self.store.begin() as conn:
            hits, end_ms = conn.execute(statement).one()
            if next(self._hits) % PRUNE_EVERY == 0:
                self.prune(conn, now_ms)
        return int(hits), max(0.0, (end_ms - now_ms) / 1000)

    def give_back(self, key: str, now: float) -> None:
        """Take one hit back from `key`'s current window (a reserved attempt that turned out fine)."""
        c = rate_limit_hits.c
        with self.store.begin() as conn:
            conn.execute(update(rate_limit_hits).where(c.key == key[:200], c.hits > 0,
                                                       c.window_end_ms > int(now * 1000)).values(hits=c.hits - 1))

    def clear(self, key: str) -> None:
        """Forget `key`'s window and hits."""
        with self.store.begin() as conn:
            conn.execute(delete(rate_limit_hits).where(rate_limit_hits.c.key == key[:200]))

    def prune(self, conn: Any, now_ms: int) -> int:
        """Delete windows that ended more than PRUNE_AFTER_MS ago; returns how many."""
        gone = conn.execute(delete(rate_limit_hits).where(rate_limit_hits.c.window_end_ms < now_ms - PRUNE_AFTER_MS))
        return int(gone.rowcount or 0)
