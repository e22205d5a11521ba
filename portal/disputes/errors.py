"""The disputes domain's one exception: a submission or staff action refused, in words for the person who sent it.

Raised before anything is written (no row, no file, no email), by the checks of what may be disputed
(portal/disputes/service.py) and of the attached files (portal/disputes/attachments.py).
"""

from __future__ import annotations

from gettext import NullTranslations

from portal.core.errors import PortalError


class DisputeRefused(PortalError):
    """A submission that cannot be accepted; the message says why, in words for the customer. `status` is
    the HTTP status the webhook answers with (413 for a file over the limit)."""

    def __init__(self, message: str, status: int = 400, **params: object):
        # `message` is an English template (marked N_ where a customer sees it) with named `params`: the page says
        # it in the customer's language (`text`); `message` is the English, for the logs and the staff.
        super().__init__(message % params if params else message)
        self.status, self.template, self.params = status, message, params

    def text(self, t: NullTranslations) -> str:
        translated = t.gettext(self.template)
        return translated % self.params if self.params else translated
