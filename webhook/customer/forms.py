"""A customer's form posted from a static page with the page's signed token (the self-service and saved-method
forms): the one shape their views share.

`customer_form(route)` checks the token first (webhook/formtoken.py: a tampered, expired or revoked token is the plain
404 and records nothing) and gives the customer it binds, and the customer's language (customers.csv locale), in
which every answer page is rendered: `answer` for what was done, `refused` for a refusal of the domain, whose page
says the refusal in the customer's language while the log keeps the English.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal.core.signing import PageClaims
from webhook.formtoken import page_claims
from webhook.logs import event
from webhook.services import client_ip, render, services, translations


@dataclass(frozen=True)
class CustomerForm:
    claims: PageClaims
    locale: str

    @property
    def customer_id(self) -> str:
        return self.claims.customer_id

    def answer(self, template: str, status: int, **context: Any) -> Any:
        """The answer page, in the customer's language."""
        return render(template, status, locale=self.locale, **context)

    def refused(self, exc: Any, logged_as: str, template: str, status: int, **context: Any) -> Any:
        """The refusal `exc` (a CustomerRefusal or SelfServiceRefused: its `message` English, its `text(t)` the
        customer's) logged as `logged_as`, and shown as `message` on `template`."""
        event(logged_as, reason=exc.message, ip=client_ip())
        return self.answer(template, status, message=exc.text(translations(self.locale)), **context)


def customer_form(route: str) -> CustomerForm:
    """The form's verified page token (see the module docstring) and the language of its customer's answers."""
    claims = page_claims(route)
    return CustomerForm(claims, services().store.customer_locale(claims.customer_id))
