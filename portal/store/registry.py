"""Every table of the store, for Alembic: importing this module registers them all on `store.metadata`.

Features keep their tables in their own modules (defined on `portal.store.database.metadata`); each such module is
imported here once, so migrations and the "tables match migrations" test see the whole schema.
"""

from __future__ import annotations

from portal.balances import position
from portal.staff import receiptlines, receiptrollup
from portal.staff import users as staffusers
from portal.store import database as store
from portal.store import disputes as disputestore
from portal.store import mail as mailstore
from portal.store import payments as paystore
from portal.store import ratelimits
from portal.store.database import metadata

__all__ = ["disputestore", "mailstore", "metadata", "paystore", "position", "ratelimits", "receiptlines",
           "receiptrollup", "staffusers", "store"]
