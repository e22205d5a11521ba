"""Documents through the webhook, on SQLite and PostgreSQL: /d/<token> records the download and redirects to a
short-lived address (/files/ for folder targets, a presigned URL for S3), only ever into the customer's own
folder; what a browser may show inline, and how."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from portal.publish.objects import Download
from portal.publish.s3 import S3Target
from tests.site_helpers import SHOWN
from tests.webhook_helpers import (
    all_events,
    invoice_of,
    make_app,
    place_documents,
    tamper,
    two_customers,
)


@pytest.fixture
def app(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


# --- /d and /files: documents --------------------------------------------------------------------------


def test_document_records_and_redirects_to_a_short_lived_file_address(client, store, ledger, signer, settings,
                                                                      tmp_path):
    place_documents(ledger, settings, store, tmp_path / "site")
    a, _ = two_customers(ledger)
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    response = client.get(f"/d/{signer.doc_token(a, 1, doc.document_id, doc.invoice_id, doc.sha256 + doc.extension)}")
    assert response.status_code == 303
    location = urlparse(response.headers["Location"]).path
    assert location.startswith("/files/")
    [event] = all_events(store)
    assert (event.kind, event.document_id, event.invoice_id) == ("document_viewed", doc.document_id, doc.invoice_id)
    with client.get(location) as served:
        assert served.status_code == 200
        assert served.data == ledger.document_path(doc).read_bytes()
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        disposition = served.headers["Content-Disposition"]
    assert disposition.startswith("inline" if doc.extension in {".pdf", ".png", ".jpg"} else "attachment")
    assert Path(doc.file).name in disposition  # saved under its own name, not the content hash
    assert len(all_events(store)) == 1  # the file itself is not a second receipt


def test_file_addresses_expire_and_cannot_be_forged(client, app, store, ledger, signer, settings, tmp_path,
                                                    monkeypatch):
    place_documents(ledger, settings, store, tmp_path / "site")
    a, _ = two_customers(ledger)
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    location = client.get(f"/d/{signer.doc_token(a, 1, doc.document_id, doc.invoice_id, doc.sha256 + doc.extension)}"
                          ).headers["Location"]
    with client.get(location) as served:
        assert served.status_code == 200
    assert client.get(tamper(location)).status_code == 404
    import time

    later = time.time() + 301
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get(location).status_code == 404


def test_no_token_reaches_another_customers_document(client, store, ledger, signer, settings, tmp_path):
    place_documents(ledger, settings, store, tmp_path / "site")
    a, _ = two_customers(ledger)
    theirs = next(d for d in ledger.documents.values() if d.customer_id != a)
    name = theirs.sha256 + theirs.extension
    # A's (genuinely signed) token naming B's document id and object name: the folder is A's, so nothing.
    assert client.get(f"/d/{signer.doc_token(a, 1, theirs.document_id, '', name)}").status_code == 404
    assert all_events(store) == []
    # A's statement token naming B's object name: A's folder does not hold it, so A's own statement as the store
    # shows it now is rendered into A's folder (generated PDFs are made on their first download), never B's file.
    response = client.get(f"/d/{signer.doc_token(a, 1, 'statement', '', name)}")
    assert response.status_code == 303
    with client.get(urlparse(response.headers["Location"]).path) as served:
        assert served.data.startswith(b"%PDF") and served.data != ledger.document_path(theirs).read_bytes()
    folder = tmp_path / "site" / "docs" / signer.customer_key(a, 1)
    assert not (folder / name).exists() and any(p.read_bytes() == served.data for p in folder.glob("*.pdf"))


def test_s3_target_redirects_to_a_presigned_url_for_the_customers_own_folder(settings, tmp_path, store, ledger,
                                                                            signer, monkeypatch):
    calls = []

    def download(self, object_key, expires_in, filename=None, disposition="inline"):
        calls.append((object_key, expires_in, filename))
        return Download(url=f"https://bucket.example/{object_key}?X-Amz-Signature=abc")

    monkeypatch.setattr(S3Target, "download", download)
    a, _ = two_customers(ledger)
    doc = next(d for d in ledger.documents.values() if d.customer_id == a)
    name = doc.sha256 + doc.extension
    with make_app(settings.replace(target="s3://bucket/site"), tmp_path) as app:
        response = app.test_client().get(f"/d/{signer.doc_token(a, 1, doc.document_id, doc.invoice_id, name)}")
        assert response.status_code == 303
        assert calls == [(f"docs/{signer.customer_key(a, 1)}/{name}", 300, Path(doc.file).name)]
        assert response.headers["Location"].startswith("https://bucket.example/docs/")
        assert [e.kind for e in all_events(store)] == ["document_viewed"]
        assert app.test_client().get("/files/anything").status_code == 404


def test_folder_documents_download_unless_browsers_show_their_type_and_run_sandboxed(app, client, ledger, signer,
                                                                                   tmp_path):
    """The same rule as presigned S3 URLs (SHOWN in tests/site_helpers.py), and a CSP sandbox: a document shown
    in the browser runs no script and counts as another origin, whatever it holds. But a PDF: Chrome and Safari
    show nothing for a sandboxed PDF (their viewer is a plugin no sandbox token allows), and run it apart from
    our origin anyway."""
    a, _ = two_customers(ledger)
    folder = tmp_path / "site" / "docs" / signer.customer_key(a, 1)
    folder.mkdir(parents=True, exist_ok=True)
    for extension, disposition in SHOWN.items():
        name = "c" * 64 + extension
        (folder / name).write_bytes(b"<?xml version='1.0'?><x/>")
        token = app.extensions["portal"].files.dumps([a, 1, name, f"Delivery note{extension}"])
        with client.get(f"/files/{token}") as served:
            assert served.status_code == 200
            assert served.headers["Content-Disposition"].startswith(disposition), extension
            policy = [d.strip() for d in served.headers["Content-Security-Policy"].split(";")]
            assert ("sandbox" in policy) == (extension != ".pdf"), (extension, policy)
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


def test_rendered_pdfs_are_saved_under_readable_names(client, store, ledger, signer, settings, tmp_path):
    a, b = two_customers(ledger)
    invoice = invoice_of(ledger, a)
    name = "b" * 64 + ".pdf"
    target = tmp_path / "site" / "docs" / signer.customer_key(a, 1) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"%PDF-1.4 rendered")
    cases = [(f"invoice:{invoice.invoice_id}", invoice.invoice_id, f"Invoice {invoice.number}.pdf"),
             ("statement", "", "Statement.pdf")]
    for document_id, invoice_id, expected in cases:
        location = client.get(f"/d/{signer.doc_token(a, 1, document_id, invoice_id, name)}").headers["Location"]
        with client.get(urlparse(location).path) as served:
            assert expected in served.headers["Content-Disposition"]
    # The invoice PDF of an invoice that is not the one the token names, or not this customer's: nothing.
    theirs = invoice_of(ledger, b).invoice_id
    for document_id, invoice_id in ((f"invoice:{theirs}", invoice.invoice_id), (f"invoice:{theirs}", theirs),
                                    ("statement", invoice.invoice_id)):
        assert client.get(f"/d/{signer.doc_token(a, 1, document_id, invoice_id, name)}").status_code == 404
    assert store.count_events(kind="document_viewed") == 2
