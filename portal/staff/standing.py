"""Where an invoice stands now, as the staff reports show it next to a payment or a dispute that names it.

From the invoice's stored position (portal/balances/position.py, `position.stored`): what it owes now (`open`,
minor units) and its `status`; both None for an invoice the store has no position for (not in the export).
"""

from __future__ import annotations

from typing import Any


def standing(stored: tuple | None) -> dict[str, Any]:
    """`{"open": ..., "status": ...}` from one entry of `position.stored(conn)` (None: not known)."""
    if stored is None:
        return {"open": None, "status": None}
    return {"open": int(stored[1]), "status": stored[0]}
