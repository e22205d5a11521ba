"""Rate limits: fixed-window counters behind a small store interface.

The default store lives in the worker's memory, which is right for one machine and cheap (a dict and a
lock). Each gunicorn worker counts on its own, so with W workers a client gets up to W times the limit in
the worst case; deployments with many instances plug in a shared store with the same two-method
interface (Redis: `INCR key` + `EXPIRE key window NX`; a database: an upsert on (key, window_start)).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Limit:
    """At most `count` hits per `seconds`."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str | Limit) -> Limit:
        """"30/60" -> 30 hits per 60 seconds; raises ValueError naming the problem."""
        if isinstance(text, Limit):
            return text
        count, _, seconds = str(text).partition("/")
        limit = cls(int(count), int(seconds or 60))
        if limit.count < 1 or limit.seconds < 1:
            raise ValueError(f"rate limit {text!r}: both numbers must be at least 1")
        return limit


class RateLimitStore(Protocol):
    def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        """Count one hit on `key` in the current `window`-second window.

        Return (hits so far in this window including this one, seconds until the window resets).
        """


class MemoryRateLimitStore:
    """Per-process counters. Bounded: past `max_keys` entries, finished windows are dropped first, then
    the oldest windows, so a flood of distinct keys (random tokens) cannot exhaust memory."""

    def __init__(self, max_keys: int = 100_000):
        self.max_keys = max_keys
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, hits)
        self._lock = threading.Lock()

    def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        with self._lock:
            end, hits = self._windows.get(key, (0.0, 0))
            if now >= end:
                end, hits = now + window, 0
            hits += 1
            self._windows[key] = (end, hits)
            if len(self._windows) > self.max_keys:
                self._prune(now)
            return hits, end - now

    def _prune(self, now: float) -> None:
        live = {k: v for k, v in self._windows.items() if v[0] > now}
        if len(live) > self.max_keys * 3 // 4:
            keep = sorted(live.items(), key=lambda kv: kv[1][0], reverse=True)[: self.max_keys // 2]
            live = dict(keep)
        self._windows = live

    def __len__(self) -> int:
        return len(self._windows)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds, at least 1, meaningful when not allowed


ALLOWED = Verdict(True, 0)  # made once: every allowed request would otherwise build the same frozen object


class RateLimiter:
    """Checks several (key, limit) pairs at once; every pair is counted, the strictest one decides."""

    def __init__(self, store: RateLimitStore | None = None, clock=time.monotonic):
        self.store = store or MemoryRateLimitStore()
        self.clock = clock

    def check(self, *rules: tuple[str, Limit]) -> Verdict:
        now = self.clock()
        retry = 0.0
        for key, limit in rules:
            hits, reset = self.store.hit(f"{key}/{limit.seconds}", limit.seconds, now)
            if hits > limit.count:
                retry = max(retry, reset)
        if retry:
            return Verdict(False, max(1, math.ceil(retry)))
        return ALLOWED
