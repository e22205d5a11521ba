"""Dispute attachments on a real S3-compatible store (SeaweedFS checks signatures): stored as private objects
under <prefix>/disputes/, reachable by staff through a presigned URL only; a refused dispute stores nothing."""

from __future__ import annotations

import itertools
import os

import pytest
import requests

from portal.disputes.attachments import Upload, attachment_for_staff
from portal.disputes.errors import DisputeRefused
from portal.disputes.service import submit_dispute
from portal.staff.disputes_report import disputes
from tests.s3server import point_boto3_at, started_or_skipped
from tests.webhook_helpers import import_sample

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
_buckets = itertools.count(1)


@pytest.fixture(scope="module")
def s3():
    yield from started_or_skipped()


@pytest.fixture
def s3_settings(s3, settings, store, export_dir, monkeypatch):
    point_boto3_at(s3, monkeypatch)
    bucket = s3.create_bucket(f"disp-{os.getpid()}-{next(_buckets)}")
    import_sample(store, settings, export_dir)
    return settings.replace(target=f"s3://{bucket}/site"), bucket


def _invoice(store):
    data = next(d for d in store.customer_data() if d.invoices)
    return data.customer.customer_id, data.invoices[0]


def _keys(s3, bucket):
    return [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_attachments_are_private_objects_reached_by_presigned_url_only(s3, s3_settings, store):
    settings, bucket = s3_settings
    customer_id, inv = _invoice(store)
    submit_dispute(store, settings, customer_id, [inv.invoice_id], {}, "pricing", "see the scan",
                   [Upload("../scan.pdf", PDF)])
    [row] = disputes(store)
    key = f"site/disputes/{row['dispute_id']}/1-scan.pdf"
    assert _keys(s3, bucket) == [key]
    url = attachment_for_staff(store, settings, row["dispute_id"], 1)
    assert isinstance(url, str) and "X-Amz-Signature=" in url
    got = requests.get(url, timeout=10)
    assert got.content == PDF
    assert got.headers["Content-Disposition"].startswith('attachment; filename="scan.pdf"')  # never inline
    # The same object without a signature: refused (the bucket is private).
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403


def test_a_refused_dispute_stores_no_object(s3, s3_settings, store):
    settings, bucket = s3_settings
    customer_id, inv = _invoice(store)
    with pytest.raises(DisputeRefused):
        submit_dispute(store, settings, customer_id, [inv.invoice_id], {}, "pricing", "x",
                       [Upload("a.pdf", PDF), Upload("b.pdf", b"<html>not a pdf</html>")])
    assert _keys(s3, bucket) == [] and disputes(store) == []


def test_attachments_go_to_a_private_target_of_their_own_and_staff_still_reach_them(s3, s3_settings, store):
    """private_target can name another bucket (or prefix): nothing lands in the site's bucket."""
    settings, site_bucket = s3_settings
    vault = s3.create_bucket(f"vault-{os.getpid()}-{next(_buckets)}")
    settings = settings.replace(private_target=f"s3://{vault}/attachments")
    customer_id, inv = _invoice(store)
    submit_dispute(store, settings, customer_id, [inv.invoice_id], {}, "pricing", "see the scan",
                   [Upload("scan.pdf", PDF)])
    [row] = disputes(store)
    assert _keys(s3, site_bucket) == []
    assert _keys(s3, vault) == [f"attachments/disputes/{row['dispute_id']}/1-scan.pdf"]
    got = requests.get(attachment_for_staff(store, settings, row["dispute_id"], 1), timeout=10)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["Content-Disposition"].startswith("attachment;")
