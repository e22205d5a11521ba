"""Every table of the store, for Alembic: importing this module registers them all on `store.metadata`.

Features keep their tables in their own modules (defined on `portal.store.metadata`); each such module is
imported here once, so migrations and the "tables match migrations" test see the whole schema.
"""

from __future__ import annotations

from portal import disputestore, mailstore, paystore, position, ratelimits, receiptlines, receiptrollup, staffusers, store
from portal.store import metadata

__all__ = ["disputestore", "mailstore", "metadata", "paystore", "position", "ratelimits", "receiptlines",
           "receiptrollup", "staffusers", "store"]
