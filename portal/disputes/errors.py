"""The disputes domain's one exception: a submission or staff action refused, in words for the person who sent it.

Raised before anything is written (no row, no file, no email), by the checks of what may be disputed
(portal/disputes/service.py) and of the attached files (portal/disputes/attachments.py).
"""

from __future__ import annotations

from portal.core.errors import PortalError


class DisputeRefused(PortalError):
    """A submission that cannot be accepted; the message says why, in words for the customer. `status` is
    the HTTP status the webhook answers with (413 for a file over the limit)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
