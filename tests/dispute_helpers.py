"""Helpers of the disputes tests (tests/disputes/): sample files, posting the dispute form, and checking that a
refused dispute stored nothing anywhere and that attachments never land where the site is served."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from portal.build.pages import invoice_slug
from portal.core.signing import Signer
from portal.store import disputes as disputestore
from tests.webhook_helpers import outbox_messages

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EVIL = "<script>alert('x')</script> & <b>bold</b>"


def customer_with_invoices(store, n=2):
    """(customer, its open invoices) of a customer with at least `n` open invoices in one currency."""
    for data in store.customer_data():
        if len(data.invoices) >= n and len({i.currency for i in data.invoices}) == 1:
            return data.customer, data.invoices
    raise AssertionError("no customer with enough invoices in the sample")


def other_customers_invoice(store, customer_id):
    return next(i for d in store.customer_data() if d.customer.customer_id != customer_id for i in d.invoices)


def page_token(settings, customer_id):
    return Signer(settings).page_token("page", customer_id, 1)


def post_dispute(client, settings, customer_id, invoice_ids, files=(), reason="pricing",
                 message="Wrong unit price", **form):
    data = {"page_token": page_token(settings, customer_id), "dispute_invoice": list(invoice_ids), "reason": reason,
            "message": message, **form}
    if files:
        data["attachment"] = [FileStorage(io.BytesIO(content), name, content_type="application/pdf")
                              for name, content in files]
    # Encoded in memory: the test client spools large bodies to a temporary file it never closes.
    boundary, body = encode_multipart(MultiDict([(k, v) for k, values in data.items()
                                                 for v in (values if isinstance(values, list) else [values])]))
    return client.post("/dispute", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def count_rows(store, table):
    with store.begin() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def assert_nothing_stored(store, built, app, tmp_path):
    app.extensions["jobs"].wait()
    assert count_rows(store, disputestore.disputes) == 0
    assert count_rows(store, disputestore.dispute_invoices) == 0
    assert count_rows(store, disputestore.dispute_attachments) == 0
    private = Path(built.effective_private_target) / "disputes"
    assert not private.exists() or not any(private.rglob("*"))
    assert outbox_messages(tmp_path) == []


def assert_nowhere_in_the_site(settings, *contents):
    """No file of the site folders (what a static host serves) holds any of `contents`."""
    for folder in (settings.target, settings.build_dir):
        for path in Path(folder).rglob("*"):
            assert not (path.is_file() and path.read_bytes() in contents), path
        assert not (Path(folder) / "disputes").exists()


def invoice_page(settings, customer_id, invoice_id, folder):
    key = Signer(settings).customer_key(customer_id, 1)
    return (Path(folder) / "c" / key / "i" / f"{invoice_slug(invoice_id)}.html").read_text()


def amount_text(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"
