"""The customer asks to add or replace an AP email address; the address confirms by a link mailed to it.

Guaranteed (docs/selfservice.md):
- The customer is the page token's (the webhook checks it); a replaced contact must be one of that customer's.
- A typed address receives exactly one kind of mail before it confirms: the confirmation link
  (`confirm_message`). Nothing else is ever sent to it unless it confirmed; then it is a contact on file
  (portal/store/contactchanges.py) and `portal send`, reminders and fresh links use it like the export's.
- A confirmation token names one change of one customer at one key version, expires after a week
  (portal.core.signing.CONTACT_CONFIRM_MAX_AGE), and confirms once; a tampered, expired, revoked or foreign token
  records nothing.
- A customer can ask at most MAX_REQUESTS_PER_DAY times a day, so a page cannot be used to mail strangers.
- The collector is told of every confirmed change (`changed_message`), and the team exports them for the ERP
  (`portal report contact-changes`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from portal.core.config import Settings
from portal.core.i18n import N_, translations_for
from portal.core.signing import Signer, TokenInvalid
from portal.mail.messages import render_message
from portal.selfservice.common import SelfServiceRefused, clean_email, collector_address
from portal.store import contactchanges as store_changes
from portal.store import jobqueue
from portal.store.contactchanges import ContactChange
from portal.store.database import Store

MAX_REQUESTS_PER_DAY = 5
CONFIRM_MAIL, CHANGED_MAIL = "contact_confirm", "contact_changed"


def request_change(store: Store, customer_id: str, kind: str, replaces: str, email: str, name: str = "",
                   now: datetime | None = None) -> ContactChange:
    """Record the request and queue the confirmation mail to the new address, or refuse (nothing written)."""
    now = now or datetime.now(UTC)
    if kind not in ("add", "replace"):
        raise SelfServiceRefused(N_("Choose whether to add an address or replace one."))
    email = clean_email(email)
    name = " ".join(name.split())[:200]
    _customer_name, current = store.customer_contacts(customer_id)
    if any(c.email.lower() == email.lower() for c in current):
        raise SelfServiceRefused(N_("This address already receives our invoices."))
    replaced = next((c for c in current if c.contact_id == replaces), None) if kind == "replace" else None
    if kind == "replace" and replaced is None:
        raise SelfServiceRefused(N_("Choose the address to replace."))
    with store.begin() as conn:
        recent = [c for c in store_changes.changes(conn, [customer_id]) if c.requested_at > now - timedelta(days=1)]
        if len(recent) >= MAX_REQUESTS_PER_DAY:
            raise SelfServiceRefused(N_("Too many address changes were asked for today. Please write to us instead."),
                                     429)
        change_id = "cc_" + secrets.token_hex(12)
        store_changes.add_request(conn, change_id=change_id, customer_id=customer_id, kind=kind,
                                  replaces=replaced.contact_id if replaced else "",
                                  replaces_email=replaced.email if replaced else "", email=email, name=name,
                                  requested_at=now)
        jobqueue.enqueue(conn, CONFIRM_MAIL, customer_id, {"change_id": change_id}, now)
        return store_changes.get(conn, change_id)


def change_for_token(store: Store, signer: Signer, token: str) -> ContactChange:
    """The change a confirmation link names, still this customer's at its key version; TokenInvalid otherwise."""
    claims = signer.read_action_token("contact-confirm", token)
    with store.begin() as conn:
        change = store_changes.get(conn, claims.item)
        if change is None or change.customer_id != claims.customer_id:
            raise TokenInvalid("names no address change of this customer")
        if store.active_key_version(claims.customer_id, conn) != claims.key_version:
            raise TokenInvalid("revoked or unknown customer")
    return change


def confirm_change(store: Store, signer: Signer, token: str, now: datetime | None = None) -> ContactChange:
    """Confirm the change the link names (once); queue the collector's notice and the customer's re-render."""
    now = now or datetime.now(UTC)
    change = change_for_token(store, signer, token)
    with store.begin() as conn:
        if store_changes.confirm(conn, change.change_id, now):
            store.add_event(conn, "contact_changed", change.customer_id, detail=f"{change.kind}:{change.change_id}")
            jobqueue.enqueue(conn, CHANGED_MAIL, change.customer_id, {"change_id": change.change_id}, now)
            jobqueue.enqueue_refresh(conn, change.customer_id, now)
        return store_changes.get(conn, change.change_id)


def confirm_message(settings: Settings, store: Store, change_id: str) -> EmailMessage | None:
    """The one mail a typed address gets: its confirmation link (None once confirmed, or for a revoked
    customer: then there is nothing to confirm)."""
    with store.begin() as conn:
        change = store_changes.get(conn, change_id)
    version = store.active_key_version(change.customer_id) if change else None
    if change is None or change.status != store_changes.REQUESTED or not version:
        return None
    customer_name, _ = store.customer_contacts(change.customer_id)
    token = Signer(settings).action_token("contact-confirm", change.customer_id, version, change.change_id)
    url = f"{settings.effective_webhook_url}/contacts/confirm/{token}"
    # The customer's mail: in the customer's language (customers.csv locale), subject and body.
    locale = store.customer_locale(change.customer_id)
    t = translations_for(locale, settings.default_locale)
    return render_message(settings, "contact_confirm", (change.name, change.email),
                          t.gettext("Confirm your address for invoices from %(company)s")
                          % {"company": settings.company_name},
                          locale=locale, customer_name=customer_name, url=url, change=change)


def changed_message(settings: Settings, store: Store, change_id: str) -> EmailMessage | None:
    """The collector's notice of a confirmed change (staff mail: English)."""
    with store.begin() as conn:
        change = store_changes.get(conn, change_id)
    found = store.customer_data([change.customer_id]) if change else []
    if not found:
        return None
    customer = found[0].customer
    return render_message(settings, "contact_changed", ("", collector_address(settings, customer.collector)),
                          f"AP address {'replaced' if change.kind == 'replace' else 'added'} by "
                          f"{customer.name} ({customer.customer_id})", change=change, customer=customer)


REPORT_COLUMNS = ["change_id", "customer_id", "action", "old_contact_id", "old_email", "new_email", "name", "status",
                  "requested_at", "confirmed_at", "in_erp_at"]


def report_rows(store: Store, include_all: bool = False) -> list[dict[str, str]]:
    """`portal report contact-changes`: the confirmed changes the ERP does not list yet (what to copy into it), or
    with `include_all` every change, requested and in the ERP ones too. Columns: REPORT_COLUMNS (public)."""
    wanted = None if include_all else [store_changes.CONFIRMED]
    with store.begin() as conn:
        found = store_changes.changes(conn, statuses=wanted)

    def moment(value: datetime | None) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""

    return [{"change_id": c.change_id, "customer_id": c.customer_id, "action": c.kind, "old_contact_id": c.replaces,
             "old_email": c.replaces_email, "new_email": c.email, "name": c.name, "status": c.status,
             "requested_at": moment(c.requested_at), "confirmed_at": moment(c.confirmed_at),
             "in_erp_at": moment(c.in_erp_at)} for c in found]
