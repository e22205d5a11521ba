"""The emailed link (/l), the view beacon (/r), document downloads (/d) and "email me a fresh link".

Every route verifies first and records second: a token is checked for its signature and purpose
(itsdangerous salt), then against the store (the customer exists, is active, and its key version is the
token's: `portal revoke` bumps the version and old tokens stop working at once). Only then is an event
written, atomically with the checks: for links and beacons the store checks are the WHERE clause of the
INSERT itself (portal/store/eventlog.py), for documents one transaction. Anything that fails answers the plain
404 page.

Two receipts, on purpose:
- `link_opened`: someone or something fetched the emailed link. Mail security scanners do this for every
  message they inspect, so it proves delivery at most.
- `page_viewed`: the page's beacon script ran in a browser that showed the page. Scanners that only
  fetch the link do not run it. This is the receipt staff can rely on.
The beacon answers POST only: a GET fallback (an <img> or <noscript> pixel) would be fetched by the same
scanners and turn every scanned email into a fake "viewed".
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NoReturn

from flask import Blueprint, Response, redirect, request, url_for
from itsdangerous import BadSignature, SignatureExpired

from portal.build.customer import generated_pdf
from portal.build.pages import invoice_slug
from portal.collect.touches import record_portal_email
from portal.core.links import link_url
from portal.core.signing import LinkClaims, TokenExpired, TokenInvalid, customer_key
from portal.mail.messages import fresh_link_message
from portal.payments.history import receipt_reference
from portal.publish.documents import document_download
from portal.store.database import InvoiceState
from webhook.errors import TokenRejected
from webhook.logs import event, log, token_ref
from webhook.security import rate_limited
from webhook.services import (
    FILE_LINK_SECONDS,
    FRESH_FORM_SECONDS,
    client_ip,
    render,
    services,
    translations,
    user_agent,
)

bp = Blueprint("links", __name__)

# View-token items that are not invoice ids (see portal/build/pages.py).
PAGE_ITEMS = {"account", "statement", "receipt"}
FRESH_PER_CONTACT_PER_DAY = 3  # fresh-link emails one contact can be sent in 24 hours, across all workers
FRESH_DETAIL = "fresh_link"
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/]')


@lru_cache(maxsize=65536)
def _customer_key(secret: str, customer_id: str, key_version: int) -> str:
    # HMAC + base32 (pure Python) on every redirect adds up; the result never changes for these inputs.
    return customer_key(secret, customer_id, key_version)


def page_url(customer_id: str, key_version: int, invoice_id: str = "") -> str:
    """Where a verified link lands: the account page, or the page of one open invoice."""
    s = services()
    base = f"{s.settings.site_url.rstrip('/')}/c/{_customer_key(s.signer.secret, customer_id, key_version)}"
    return f"{base}/i/{invoice_slug(invoice_id)}.html" if invoice_id else f"{base}/index.html"


def _redirect(url: str) -> Response:
    return redirect(url, 303)


def _check_access(route: str, token: str, customer_id: str, key_version: int, invoice_id: str = "",
                  conn: Any = None) -> InvoiceState | None:
    """Reject unless the customer is active at this key version; return the invoice when it is theirs."""
    version, invoice = services().store.access(customer_id, invoice_id, conn)
    if version is None:
        raise TokenRejected(route, token, "unknown or inactive customer")
    if version != key_version:
        raise TokenRejected(route, token, f"revoked (key version {key_version}, current {version})")
    return invoice


def _refused(route: str, token: str, customer_id: str, key_version: int, invoice_id: str = "") -> NoReturn:
    """Nothing was recorded for a token: ask the store why, for the security log (the answer is the same 404)."""
    invoice = _check_access(route, token, customer_id, key_version, invoice_id)
    if invoice_id and invoice is None:
        raise TokenRejected(route, token, "names an invoice of no such customer")
    # The guarded insert saw an older state than this lookup: a revocation (or an import) in between.
    raise TokenRejected(route, token, "changed while being recorded")


@bp.get("/l/<token>")
@rate_limited("link")
def open_link(token: str) -> Any:
    """An emailed link: record `link_opened`, then 303 to the page (the invoice's, while it is open)."""
    s = services()
    try:
        claims = s.signer.read_link(token)
    except TokenExpired as exc:
        return _expired(token, exc.claims)
    except TokenInvalid as exc:
        raise TokenRejected("link", token, str(exc)) from None
    # The check and the insert in one statement, committed before anything is answered (portal/store/eventlog.py).
    receipt = s.events.record_if_current("link_opened", claims.customer_id, claims.key_version, claims.invoice_id,
                                         contact_id=claims.contact_id, ip=client_ip(), user_agent=user_agent())
    if receipt is None:
        _refused("link", token, claims.customer_id, claims.key_version)
    # The receipt is in the database; a log line per link is for debugging only (it is a measurable share of
    # the request's cost and would say nothing the events table does not).
    if log.isEnabledFor(logging.DEBUG):  # token_ref hashes the token: not for a line nobody writes
        event("link_opened", logging.DEBUG, customer=claims.customer_id, token=token_ref(token))
    # A paid (closed) or unknown invoice has no page any more: the account page is the useful landing.
    return _redirect(page_url(claims.customer_id, claims.key_version,
                              receipt.invoice_id if receipt.invoice_open else ""))


def _expired(token: str, claims: LinkClaims) -> Any:
    """A genuine but old link: offer a fresh one, mailed to the addresses on file (nothing recorded)."""
    s = services()
    _check_access("link", token, claims.customer_id, claims.key_version)
    form_token = s.fresh.dumps([claims.customer_id, claims.contact_id, claims.invoice_id, claims.key_version])
    event("link_expired", customer=claims.customer_id, token=token_ref(token))
    locale = s.store.customer_locale(claims.customer_id)
    return render("webhook/link_expired.html", 410, locale=locale,
                  title=translations(locale).gettext("This link has expired"), fresh_token=form_token,
                  action=url_for("links.fresh_link"), ttl_days=s.settings.link_ttl_days)


@bp.post("/fresh")
@rate_limited("fresh")
def fresh_link() -> Any:
    """Mail a new link to the contacts on file. Only the signed form token is read: an address typed or
    added to the form is never used, so the form cannot send anyone's link to a stranger."""
    s = services()
    token = request.form.get("token", "")
    try:
        data = s.fresh.loads(token, max_age=FRESH_FORM_SECONDS)
    except SignatureExpired as exc:
        # Genuine but old: the payload is still the one we signed, so its customer's language is known.
        old = exc.payload if isinstance(exc.payload, list) and exc.payload and isinstance(exc.payload[0], str) else []
        locale = s.store.customer_locale(old[0]) if old else ""
        t = translations(locale)
        return render("webhook/message.html", 400, locale=locale, title=t.gettext("This form is too old"),
                      message=t.gettext("Please open the link from your email again and ask for a fresh link "
                                        "there."))
    except BadSignature:
        raise TokenRejected("fresh", token, "bad signature") from None
    if not (isinstance(data, list) and len(data) == 4 and all(isinstance(v, str) for v in data[:3])
            and isinstance(data[3], int)):
        raise TokenRejected("fresh", token, "malformed")
    customer_id, contact_id, invoice_id, key_version = data
    invoice = _check_access("fresh", token, customer_id, key_version, invoice_id)
    customer_name, contacts = s.store.customer_contacts(customer_id)
    locale = s.store.customer_locale(customer_id)
    # The contact the expired link was sent to, if still on file; otherwise everyone on file for the account.
    recipients = [c for c in contacts if c.contact_id == contact_id] or contacts
    invoice = invoice if invoice and invoice.is_open else None
    since = datetime.now(UTC) - timedelta(days=1)
    sent = 0
    for contact in recipients:
        if s.store.count_events_since("email_sent", since, customer_id=customer_id, contact_id=contact.contact_id,
                                      detail_prefix=FRESH_DETAIL) >= FRESH_PER_CONTACT_PER_DAY:
            continue
        url = link_url(s.settings, s.signer, customer_id, contact.contact_id,
                       invoice.invoice_id if invoice else "", key_version)
        message = fresh_link_message(s.settings, (contact.name, contact.email), customer_name, url,
                                     invoice.number if invoice else "", locale)
        message_id = s.mailer.send(message)
        s.store.record_event("email_sent", customer_id, contact_id=contact.contact_id,
                             invoice_id=invoice.invoice_id if invoice else "", ip=client_ip(),
                             user_agent=user_agent(), detail=f"{FRESH_DETAIL} {message_id}")
        record_portal_email(s.store, customer_id, contact.contact_id, [invoice.invoice_id if invoice else ""],
                            FRESH_DETAIL, message_id)
        sent += 1
    event("fresh_link_sent", customer=customer_id, token=token_ref(token), messages=sent,
          capped=len(recipients) - sent)
    # The address stays /fresh/sent (public): the page says the same to everyone, in the configured default
    # language, or in the one a `lang` parameter names.
    return _redirect(url_for("links.fresh_sent"))


@bp.get("/fresh/sent")
def fresh_sent() -> Any:
    # The same words whether zero, one or several messages went out: the page reveals no addresses. `lang` only
    # picks one of the catalogs (language_for falls back to the default for anything else).
    locale = request.args.get("lang", "")[:20]
    t = translations(locale)
    return render("webhook/message.html", 200, locale=locale, title=t.gettext("Check your email"),
                  message=t.gettext("If this link was sent to you, a fresh link is on its way to the email address "
                                    "we have on file for your account. It can take a few minutes to arrive."))


@bp.post("/r/<token>")
@rate_limited("view")
def view_beacon(token: str) -> Any:
    """The page's beacon: a person's browser showed the page. Records `page_viewed`, answers 204."""
    s = services()
    try:
        claims = s.signer.read_page_token("view", token)
    except TokenInvalid as exc:
        raise TokenRejected("view", token, str(exc)) from None
    is_page = claims.item in PAGE_ITEMS
    # A page item records no invoice; an invoice item must be this customer's invoice (closed ones still
    # count: the customer may be looking at a page built before it was paid). One guarded statement.
    invoice_id, detail = ("", claims.item) if is_page else (claims.item, "invoice")
    receipt = s.events.record_if_current("page_viewed", claims.customer_id, claims.key_version, invoice_id,
                                         require_invoice=not is_page, ip=client_ip(), user_agent=user_agent(),
                                         detail=detail)
    if receipt is None:
        _refused("view", token, claims.customer_id, claims.key_version, invoice_id)
    if log.isEnabledFor(logging.DEBUG):
        event("page_viewed", logging.DEBUG, customer=claims.customer_id, token=token_ref(token), page=detail)
    return Response(status=204)


@bp.get("/d/<token>")
@rate_limited("doc")
def document(token: str) -> Any:
    """A document link: record `document_viewed`, then 303 to a short-lived address of the file.

    The object's folder comes from the verified customer id and key version, never from the token's
    text, so no token can name a file in another customer's folder.
    """
    s = services()
    try:
        claims = s.signer.read_doc_token(token)
    except TokenInvalid as exc:
        raise TokenRejected("doc", token, str(exc)) from None
    name = claims.name
    if claims.document_id == "statement" or claims.document_id.startswith(("invoice:", "receipt:")):
        # A PDF the portal generates is rendered on its first download (docs/documents.md); only for a token that
        # would be accepted below, which checks again as it records.
        with s.store.begin() as conn:
            if _check_access("doc", token, claims.customer_id, claims.key_version, claims.invoice_id, conn) is None \
                    and claims.invoice_id:
                raise TokenRejected("doc", token, "names an invoice of no such customer")
        name = generated_pdf(s.pdf_renderer, s.store, s.documents, claims.customer_id, claims.key_version,
                             claims.document_id, claims.name)
        if name is None:
            raise TokenRejected("doc", token, "names a document the customer no longer has")
    object_key = f"docs/{s.signer.customer_key(claims.customer_id, claims.key_version)}/{name}"
    with s.store.begin() as conn:
        invoice = _check_access("doc", token, claims.customer_id, claims.key_version, claims.invoice_id, conn)
        if claims.invoice_id and invoice is None:
            raise TokenRejected("doc", token, "names an invoice of no such customer")
        filename = _document_filename(claims.customer_id, claims.document_id, claims.invoice_id, invoice, conn)
        if filename is None:
            raise TokenRejected("doc", token, "names a document of no such customer")
        download = document_download(s.documents, object_key, FILE_LINK_SECONDS, filename)
        if download.url:  # a presigned S3 address
            url = download.url
        else:
            # A folder is cheap to look into: a missing file answers 404 before anything is recorded.
            if download.file is None or not download.file.is_file():
                raise TokenRejected("doc", token, "no such file in the site folder")
            url = url_for("files.download", token=s.files.dumps([claims.customer_id, claims.key_version,
                                                                name, filename]))
        s.store.add_event(conn, "document_viewed", claims.customer_id, document_id=claims.document_id,
                          invoice_id=claims.invoice_id, ip=client_ip(), user_agent=user_agent())
    event("document_viewed", logging.DEBUG, customer=claims.customer_id, token=token_ref(token))
    return _redirect(url)


def _document_filename(customer_id: str, document_id: str, invoice_id: str, invoice: InvoiceState | None,
                       conn: Any) -> str | None:
    """The name the browser saves the document under, or None when the token's document is not this
    customer's. PDFs the build rendered are named after their invoice ("invoice:<id>") or "statement";
    supplied documents by their documents.csv id, checked against the store."""
    if document_id == "statement":
        name = None if invoice_id else "Statement.pdf"
    elif document_id.startswith("receipt:"):
        # A receipt PDF: the payment must be this customer's and settled (a refunded one has no receipt).
        found = None if invoice_id else receipt_reference(conn, customer_id, document_id.removeprefix("receipt:"))
        name = None if found is None else f"Receipt {found}.pdf"
    elif document_id.startswith("invoice:"):
        matches = invoice is not None and document_id.removeprefix("invoice:") == invoice_id
        name = f"Invoice {invoice.number}.pdf" if matches and invoice else None
    else:
        name = services().store.document_name(customer_id, document_id, conn)
    # Header-safe: no control characters, quotes or path separators from ERP data.
    return None if name is None else _UNSAFE_FILENAME.sub("_", name)[:150]
