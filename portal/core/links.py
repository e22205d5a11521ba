"""Signed links for contacts: what `portal links` prints and what emails carry.

A link names the customer, the contact and (optionally) one invoice, at the customer's key version, so `portal
revoke` (a new key version) makes every earlier link stop working (portal/core/signing.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portal.core.config import Settings
from portal.core.signing import Signer


def link_url(settings: Settings, signer: Signer, customer_id: str, contact_id: str, invoice_id: str,
             key_version: int) -> str:
    token = signer.link_token(customer_id, contact_id, invoice_id, key_version)
    return f"{settings.effective_webhook_url}/l/{token}"


def contact_links(settings: Settings, customers: Iterable[Any], per_invoice: bool
                  ) -> list[tuple[str, str, str, str, str]]:
    """Rows of (customer_id, contact_id, email, invoice_id, url) for each contact of `customers` (the store's
    CustomerData: portal.store.database.Store.customer_data); invoice_id is '' for the account link."""
    signer = Signer(settings)
    rows = []
    for data in customers:
        cid = data.customer.customer_id
        for contact in data.contacts:
            rows.append((cid, contact.contact_id, contact.email, "",
                         link_url(settings, signer, cid, contact.contact_id, "", data.key_version)))
            if per_invoice:
                for invoice in data.invoices:
                    rows.append((cid, contact.contact_id, contact.email, invoice.invoice_id,
                                 link_url(settings, signer, cid, contact.contact_id, invoice.invoice_id,
                                          data.key_version)))
    return rows
