"""What the self-service features share: the refusal a customer reads, the address check, the collector."""

from __future__ import annotations

import re
from gettext import NullTranslations

from portal.core.config import Settings
from portal.core.errors import PortalError
from portal.core.i18n import N_

# A plain address only: no display name, no list, nothing a mail header could be split at.
EMAIL = re.compile(r"[^@\s,;<>\"'()\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
MAX_EMAIL = 254


class SelfServiceRefused(PortalError):
    """A self-service request cannot be taken; the message says why, in words for the customer."""

    def __init__(self, message: str, status: int = 400):
        # `message` is English, marked N_ for the catalog: the page says it in the customer's language (`text`).
        super().__init__(message)
        self.message = message
        self.status = status

    def text(self, t: NullTranslations) -> str:
        return t.gettext(self.message)


def clean_email(value: str) -> str:
    """The typed address, checked: SelfServiceRefused unless it is one plain address."""
    email = value.strip()
    if not email or len(email) > MAX_EMAIL or not EMAIL.fullmatch(email):
        raise SelfServiceRefused(N_("Please enter one email address, like ap@example.com."))
    return email


def collector_address(settings: Settings, collector: str) -> str:
    """Who at the AR team hears about a customer's request: its collector, else the AR inbox or support."""
    return collector or settings.ar_inbox or settings.support_email
