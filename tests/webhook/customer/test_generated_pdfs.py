"""The invoice and statement PDFs through /d/, on SQLite and PostgreSQL: the build renders none; the first download
renders the document from the store and keeps it under the name of what it shows; later downloads serve the kept
file; a page built after the shown content changed links a new name, rendered anew on its first download."""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import urlparse

import pypdf
import pytest

from portal.build import documents
from portal.build.pipeline import render_site
from tests.webhook_helpers import all_events, invoice_of, make_app, two_customers


@pytest.fixture
def renders(monkeypatch):
    """Every PDF rendered in this test, by document id."""
    done: list[str] = []
    original = documents.render

    def counted(settings, signer, customer_id, key_version, planned, *args, **kwargs):
        done.append(planned.document_id)
        return original(settings, signer, customer_id, key_version, planned, *args, **kwargs)

    monkeypatch.setattr(documents, "render", counted)
    return done


def pdf_link(page: Path, signer, document_id: str) -> str:
    """The /d/ token of the page's link to that generated document."""
    tokens = re.findall(r'/d/([A-Za-z0-9_.-]+)"', page.read_text())
    [token] = [t for t in tokens if signer.read_doc_token(t).document_id == document_id]
    return token


def download(client, token: str) -> bytes:
    response = client.get(f"/d/{token}")
    assert response.status_code == 303, response.status_code
    with client.get(urlparse(response.headers["Location"]).path) as served:
        assert served.status_code == 200
        return served.data


def test_invoice_pdf_is_rendered_on_first_download_and_then_served_as_kept(settings, store, ledger, signer,
                                                                         tmp_path, renders):
    site = tmp_path / "site"
    render_site(settings, store, site, export_folder=ledger.folder)
    assert renders == []  # the build rendered no PDF
    a, _ = two_customers(ledger)
    invoice = invoice_of(ledger, a)
    folder = site / "docs" / signer.customer_key(a, 1)
    token = pdf_link(site / "c" / signer.customer_key(a, 1) / "i" / f"{invoice.invoice_id}.html", signer,
                     f"invoice:{invoice.invoice_id}")
    name = signer.read_doc_token(token).name
    assert not (folder / name).exists()
    with make_app(settings, tmp_path, site_dir=site) as app:
        client = app.test_client()
        first = download(client, token)
        assert renders == [f"invoice:{invoice.invoice_id}"]
        assert (folder / name).read_bytes() == first  # kept under the name the page links
        reader = pypdf.PdfReader(io.BytesIO(first), strict=True)
        assert reader.metadata.title == f"Invoice {invoice.number}"
        assert download(client, token) == first
        assert renders == [f"invoice:{invoice.invoice_id}"]  # not rendered again
    assert [e.kind for e in all_events(store)] == ["document_viewed", "document_viewed"]


def test_a_page_built_after_the_shown_content_changed_gets_a_new_pdf(settings, store, ledger, signer, tmp_path,
                                                                    renders):
    site = tmp_path / "site"
    render_site(settings, store, site, export_folder=ledger.folder)
    a, _ = two_customers(ledger)
    account = site / "c" / signer.customer_key(a, 1) / "index.html"
    before = pdf_link(account, signer, "statement")
    with make_app(settings, tmp_path, site_dir=site) as app:
        old = download(app.test_client(), before)
    changed = settings.replace(bank_details="Bank of Examples\nIBAN GB33 BUKB 2020 1555 5555 55")
    render_site(changed, store, site, export_folder=ledger.folder)
    after = pdf_link(account, signer, "statement")
    assert signer.read_doc_token(after).name != signer.read_doc_token(before).name
    with make_app(changed, tmp_path, site_dir=site) as app:
        new = download(app.test_client(), after)
    assert renders == ["statement", "statement"]
    text = " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(new), strict=True).pages).split())
    assert "IBAN GB33 BUKB 2020 1555 5555 55" in text and new != old
    # Rebuilding without a change keeps the name: nothing to render on the next download.
    render_site(changed, store, site, export_folder=ledger.folder)
    assert pdf_link(account, signer, "statement") == after


def test_a_revoked_customers_old_pdf_link_renders_nothing(settings, store, ledger, signer, tmp_path, renders):
    site = tmp_path / "site"
    render_site(settings, store, site, export_folder=ledger.folder)
    a, _ = two_customers(ledger)
    token = pdf_link(site / "c" / signer.customer_key(a, 1) / "index.html", signer, "statement")
    store.revoke(a)
    with make_app(settings, tmp_path, site_dir=site) as app:
        assert app.test_client().get(f"/d/{token}").status_code == 404
    assert renders == [] and all_events(store) == []
