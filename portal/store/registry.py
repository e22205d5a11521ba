"""Every table of the store, for Alembic: importing this module registers them all on `tables.metadata`.

Every table is defined in a module of this package (the queries stay with their domain); each such module is
imported here once, so migrations and the "tables match migrations" test see the whole schema. The store imports
no package above it (README.md, Architecture), so a feature's table goes into a module here, not into the feature.
"""

from __future__ import annotations

from portal.store import (
    approvals,
    autopay,
    collect,
    contactchanges,
    disputes,
    jobqueue,
    mail,
    payments,
    plans,
    positions,
    ratelimits,
    staff,
    tables,
)
from portal.store.tables import metadata

__all__ = ["approvals", "autopay", "collect", "contactchanges", "disputes", "jobqueue", "mail", "metadata",
           "payments", "plans", "positions", "ratelimits", "staff", "tables"]
