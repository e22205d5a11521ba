"""Who may do what on the workbench, by staff role (portal/staff/users.py holds the roles).

- viewer: reads the dashboard; logs nothing (a read-only account for auditors and finance).
- collector: logs touches and places holds on any customer (a colleague's customer too, when covering a
  holiday), and sees their own portfolio first; with `collect_private_notes` on, sees only the notes they wrote.
- manager, admin: everything a collector does, every note, every collector's portfolio.
The web layer checks the role before it calls a domain function, and the functions check again (`require`),
so a new caller cannot forget it.
"""

from __future__ import annotations

from dataclasses import dataclass
from gettext import NullTranslations

from portal.core.errors import PortalError

WORKERS = ("collector", "manager", "admin")
OVERSEERS = ("manager", "admin")


class CollectRefused(PortalError):
    """A workbench action refused; the message says why. `status`: the HTTP status the webhook answers with."""

    def __init__(self, message: str, status: int = 400, **params: object):
        # `message` is an English template (marked N_ where a customer sees it: a promise made on their page) with
        # named `params`; the customer's page says it in their language (`text`), staff read `message`.
        super().__init__(message % params if params else message)
        self.status, self.template, self.params = status, message, params

    def text(self, t: NullTranslations) -> str:
        translated = t.gettext(self.template)
        return translated % self.params if self.params else translated


@dataclass(frozen=True)
class Actor:
    """The staff user acting: their email (recorded as who did it) and role."""

    email: str
    role: str

    @property
    def works_customers(self) -> bool:
        return self.role in WORKERS

    @property
    def oversees(self) -> bool:
        return self.role in OVERSEERS


def require_worker(actor: Actor) -> None:
    if not actor.works_customers:
        raise CollectRefused(f"{actor.email} is a {actor.role}: only collectors, managers and admins work customers",
                             403)


def sees_note_of(actor: Actor, author: str, private_notes: bool) -> bool:
    """Whether `actor` may read a note written by `author`."""
    return not private_notes or actor.oversees or author == actor.email
