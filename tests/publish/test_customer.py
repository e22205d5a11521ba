"""publish_customer (portal/publish/customer.py) against a real S3 server: a customer's first refresh, which has no
manifest of its own yet, leaves alone the documents the target already holds, and asks about them all at once."""

from __future__ import annotations

import hashlib
import threading

from portal.publish.customer import publish_customer, read_customer_manifest
from portal.publish.objects import LocalFile
from portal.publish.targets import choose_target


def _file(path: str, data: bytes) -> LocalFile:
    return LocalFile(path, hashlib.sha256(data).hexdigest(), len(data), None, data)


def test_a_first_refresh_asks_s3_about_its_documents_at_once_and_uploads_none_it_holds(bucket):
    target = choose_target(f"s3://{bucket}/site", workers=8)
    documents = [_file(f"docs/key1/invoice-{n}.pdf", f"%PDF invoice {n}".encode()) for n in range(4)]
    for document in documents:  # what the nightly publish put there
        target.put(document)
    page = _file("c/key1/index.html", b"<p>paid</p>")
    # Every document's question must be in flight before any is answered: one by one, the first waits here in vain.
    together = threading.Barrier(len(documents), timeout=10)
    ask = target.remote_sha

    def asked(path: str) -> str | None:
        together.wait()
        return ask(path)

    target.remote_sha = asked
    put = target.put
    uploaded: list[str] = []
    target.put = lambda item: (uploaded.append(item.path), put(item))[1]
    result = publish_customer(target, "C00001", "key1", [page, *documents], 1, "2026-11-20T18:00:00+00:00")
    assert uploaded == [page.path] and result.uploaded == 1 and result.unchanged == len(documents)
    manifest = read_customer_manifest(target, "C00001", "key1")
    assert manifest.files == {f.path: f.sha256 for f in [page, *documents]}
