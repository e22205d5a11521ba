"""Signed links for contacts: what `portal links` prints and what emails carry."""

from __future__ import annotations

from portal.core.config import Settings
from portal.core.signing import Signer
from portal.store.database import Store


def link_url(settings: Settings, signer: Signer, customer_id: str, contact_id: str, invoice_id: str,
             key_version: int) -> str:
    token = signer.link_token(customer_id, contact_id, invoice_id, key_version)
    return f"{settings.effective_webhook_url}/l/{token}"


def contact_links(settings: Settings, store: Store, customer_ids: set[str] | None,
                  per_invoice: bool) -> list[tuple[str, str, str, str, str]]:
    """Rows of (customer_id, contact_id, email, invoice_id, url); invoice_id is '' for the account link."""
    signer = Signer(settings)
    rows = []
    for data in store.customer_data(customer_ids):
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
