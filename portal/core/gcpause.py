"""Pausing Python's cyclic garbage collector while a bulk load builds a large, acyclic object graph.

The collector runs after every few hundred new container objects and, now and then, walks every object still
alive. Reading a 100,000-invoice export creates over a million objects (rows, dataclasses, dates) that live on,
so those walks grow with the heap and found nothing to free: they were a third of the read's time. Reference
counting still frees everything as usual while the collector is paused; only reference cycles wait for it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block, then restore it as it was (nested uses are fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def existing_objects_frozen() -> Iterator[None]:
    """gc.freeze() for the block: the collector leaves every object that exists on entry alone, which also
    keeps it from writing to their memory in processes forked meanwhile (copy-on-write pages stay shared).
    Objects are still freed by reference counting; on exit they return to the collector's oldest generation,
    unless something had frozen objects before (then the freeze is theirs to lift)."""
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()
