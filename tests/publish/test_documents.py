"""Documents reached through presigned S3 URLs (SeaweedFS checks their signatures and expiry): only a document's
own URL works, and only for as long as it was signed; types a browser could run download instead of opening."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

import pytest

from portal.export.model import DOCUMENT_TYPES
from portal.publish.documents import document_download, presign_document, served_documents
from portal.publish.manifest import Manifest
from portal.publish.objects import Download, PublishError
from portal.publish.publisher import publish
from tests.conftest import make_settings
from tests.s3server import SeaweedS3
from tests.site_helpers import SHOWN, get


def test_presigned_document_url_works_and_expired_or_tampered_ones_are_refused(site, bucket: str,
                                                                              aws_env: SeaweedS3):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    docs = sorted(p for p in Manifest.load(out).files if p.startswith("docs/") and p.endswith(".pdf"))
    document, other = docs[0], docs[1]

    url = presign_document(settings, document, expires_in=300, filename="Invoice INV-1 (copy).pdf")
    status, body, headers = get(url)
    assert status == 200 and body == (out / document).read_bytes()
    assert "X-Amz-Signature=" in url and "filename" in headers.get("Content-Disposition", "")

    # The same signature for another customer's document: refused.
    assert get(url.replace(document, other))[0] == 403
    # A changed signature: refused.
    parts = urlparse(url)
    query = dict(parse_qsl(parts.query))
    query["X-Amz-Signature"] = query["X-Amz-Signature"][:-1] + ("0" if query["X-Amz-Signature"][-1] != "0" else "1")
    assert get(parts._replace(query=urlencode(query)).geturl())[0] == 403
    # A longer lifetime than the one signed: refused.
    query = dict(parse_qsl(parts.query), **{"X-Amz-Expires": "604800"})
    assert get(parts._replace(query=urlencode(query)).geturl())[0] == 403
    # Expired: refused.
    short = presign_document(settings, document, expires_in=1)
    time.sleep(2.2)
    assert get(short)[0] == 403
    # The objects themselves are not public.
    assert get(f"{aws_env.endpoint}/{bucket}/site/{document}")[0] in {401, 403}


def test_presigned_documents_download_unless_browsers_show_their_type(site, bucket: str, aws_env: SeaweedS3):
    """An .xml presigned `inline` opened in the browser, on the bucket's origin."""
    settings, _out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    client = aws_env.client()
    for extension, disposition in SHOWN.items():
        key = f"docs/{'k' * 26}/{'a' * 64}{extension}"
        client.put_object(Bucket=bucket, Key=f"site/{key}", Body=b"<?xml version='1.0'?><x/>",
                          ContentType=DOCUMENT_TYPES[extension])
        status, _, headers = get(presign_document(settings, key, filename=f"Delivery note{extension}"))
        assert status == 200
        assert headers["Content-Disposition"].startswith(f"{disposition};"), extension
        assert f"Delivery note{extension}" in headers["Content-Disposition"]


def test_presign_refuses_folder_targets_and_paths_outside_docs(site, aws_env: SeaweedS3):
    settings, _out = site
    with pytest.raises(PublishError, match="dev server"):
        presign_document(settings.replace(target="public"), "docs/k/x.pdf")
    s3_settings = settings.replace(target="s3://bucket/site")
    for key in ("c/key/index.html", "docs/../c/key/index.html", "docs/k/.manifest.json"):
        with pytest.raises(PublishError, match="only documents"):
            presign_document(s3_settings, key)


def test_the_webhook_reads_documents_from_the_s3_target_or_the_folder_it_serves(tmp_path: Path):
    settings = make_settings(f"sqlite:///{tmp_path / 'p.db'}", target=str(tmp_path / "public"))
    assert served_documents(settings).local_root == tmp_path / "public"
    assert served_documents(settings, tmp_path / "build").local_root == tmp_path / "build"  # `portal serve`
    on_s3 = served_documents(settings.replace(target="s3://bucket/site"), tmp_path / "build")
    assert on_s3.local_root is None and on_s3.name == "s3://bucket/site"
    folder = served_documents(settings)
    download = document_download(folder, "docs/key/" + "a" * 64 + ".pdf", 300, "Invoice 1.pdf")
    assert download == Download(file=tmp_path / "public" / "docs" / "key" / ("a" * 64 + ".pdf"))
    for key in ("c/key/index.html", "docs/../c/key/index.html", "docs/key/.manifest.json"):
        with pytest.raises(PublishError, match="only documents"):
            document_download(folder, key, 300)
