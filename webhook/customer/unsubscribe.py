"""Unsubscribe from reminders: `GET /u/<token>` asks, `POST /u/<token>` records.

GET never unsubscribes: mail security scanners fetch every link in a message, and a GET that acted would
unsubscribe every contact whose mail is scanned. The confirmation page's button POSTs to the same
address, which is also what mail clients do for RFC 8058 one-click unsubscribe (`List-Unsubscribe-Post`).
The token (salt `unsubscribe`) names the customer, its key version and the contact; it is checked like
every other token before anything is recorded. Invoice emails and fresh links are not affected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, url_for

from portal.core.signing import PageClaims, TokenInvalid
from portal.store.mail import unsubscribe
from webhook.errors import TokenRejected
from webhook.logs import event, token_ref
from webhook.security import rate_limited
from webhook.services import client_ip, render, services, translations, user_agent

bp = Blueprint("unsubscribe", __name__)


def _verify(token: str, conn: Any = None) -> tuple[PageClaims, str]:
    """The token's claims and the contact's address, or TokenRejected (the plain 404 page)."""
    s = services()
    try:
        claims = s.signer.read_page_token("unsubscribe", token)
    except TokenInvalid as exc:
        raise TokenRejected("unsubscribe", token, str(exc)) from None
    version, _ = s.store.access(claims.customer_id, "", conn)
    if version is None:
        raise TokenRejected("unsubscribe", token, "unknown or inactive customer")
    if version != claims.key_version:
        raise TokenRejected("unsubscribe", token, f"revoked (key version {claims.key_version}, current {version})")
    _, contacts = s.store.customer_contacts(claims.customer_id, conn)
    contact = next((c for c in contacts if c.contact_id == claims.item), None)
    if contact is None:
        raise TokenRejected("unsubscribe", token, "no such contact on file")
    return claims, contact.email


@bp.get("/u/<token>")
@rate_limited("unsubscribe")
def confirm(token: str) -> Any:
    """Ask; change nothing."""
    claims, email = _verify(token)
    locale = services().store.customer_locale(claims.customer_id)
    return render("webhook/unsubscribe.html", 200, locale=locale,
                  title=translations(locale).gettext("Stop payment reminders?"), email=email,
                  action=url_for("unsubscribe.confirmed", token=token))


@bp.post("/u/<token>")
@rate_limited("unsubscribe")
def confirmed(token: str) -> Any:
    """Record the unsubscribe (once; repeating it changes nothing) and say so."""
    s = services()
    with s.store.begin() as conn:
        claims, email = _verify(token, conn)
        if unsubscribe(conn, claims.customer_id, claims.item, datetime.now(UTC)):
            s.store.add_event(conn, "unsubscribed", claims.customer_id, contact_id=claims.item, ip=client_ip(),
                              user_agent=user_agent(), detail="reminders")
    event("unsubscribed", customer=claims.customer_id, token=token_ref(token))
    locale = s.store.customer_locale(claims.customer_id)
    return render("webhook/unsubscribe_done.html", 200, locale=locale,
                  title=translations(locale).gettext("You will get no more reminders"), email=email)
