"""The refresh job (portal/jobs/refresh.py) and the nightly publish beside it (portal/publish/freshness.py): one
customer rendered from the store and published alone, against its own manifest, to a folder and to S3; a nightly
build and publish that run while payments come in never leave an older page on the target."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from portal.build.pipeline import render_site
from portal.core.signing import Signer
from portal.jobs.refresh import Refresher
from portal.jobs.worker import Worker
from portal.publish.customer import customer_manifest_name, read_customer_manifest
from portal.publish.manifest import REMOTE_MANIFEST
from portal.publish.publisher import publish
from portal.publish.targets import choose_target
from portal.store import jobqueue
from tests.payfixtures import (
    attempt_id_sent,
    intent_event,
    invoice_page,
    post_pay,
    send_event,
    session_completed,
    usd_customer,
)

# A paid invoice's badge says when it was paid ("Paid on DATE", issue 20).
PAID = '<span class="badge badge-paid">Paid on '


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _pay(app, settings, store, standin, method="card"):
    """A customer pays its first invoice; the webhook records the event and its jobs, and runs none."""
    cid, invoices = usd_customer(store)
    client = app.test_client()
    post_pay(client, settings, cid, [invoices[0].invoice_id], method)
    attempt_id = attempt_id_sent(standin)
    if method == "card":
        assert send_event(client, session_completed(attempt_id)).status_code == 200
    else:
        assert send_event(client, session_completed(attempt_id, paid=False)).status_code == 200
        assert send_event(client, intent_event("payment_intent.processing", attempt_id)).status_code == 200
    return cid, invoices[0], attempt_id


def test_a_refresh_publishes_that_customer_alone_and_never_the_whole_site_manifest(quiet_app, external, store,
                                                                                   standin):
    target = Path(external.target)
    before = _snapshot(target)
    cid, invoice, _ = _pay(quiet_app, external, store, standin)
    assert _snapshot(target) == before  # answered; nothing published yet
    outcomes = Worker(external, store).drain()
    assert [(o.job.kind, o.ok) for o in outcomes] == [("refresh", True), ("payment_mail", True)]
    after = _snapshot(target)
    changed = {p for p in after if before.get(p) != after[p]}
    key = Signer(external).customer_key(cid, 1)
    assert changed and all(p.startswith((f"c/{key}/", f"docs/{key}/", ".portal-customers/")) for p in changed)
    assert customer_manifest_name(key) in changed and after[REMOTE_MANIFEST] == before[REMOTE_MANIFEST]
    assert PAID in invoice_page(external, cid, invoice.invoice_id)
    manifest = read_customer_manifest(choose_target(external.target), cid, key)
    assert manifest.revision >= 1 and {p for p in manifest.files if p.startswith("c/")} == \
        {p for p in after if p.startswith(f"c/{key}/")}
    # The same state again: everything is already there.
    assert Refresher(external).refresh(store, cid).uploaded == 0


def test_a_refresh_publishes_to_s3_without_reading_the_main_manifest(quiet_app, external, store, standin, bucket,
                                                                   aws_env):
    settings = external.replace(target=f"s3://{bucket}/site")
    publish(settings, settings.build_dir)
    client = aws_env.client()
    main = client.get_object(Bucket=bucket, Key=f"site/{REMOTE_MANIFEST}")["LastModified"]
    cid, invoice, _ = _pay(quiet_app, external, store, standin)
    refresher = Refresher(settings)
    reads: list[str] = []
    real_read = refresher.target.read
    refresher.target.read = lambda name: (reads.append(name), real_read(name))[1]
    result = refresher.refresh(store, cid)
    key = Signer(settings).customer_key(cid, 1)
    assert reads == [customer_manifest_name(key)] and result.uploaded >= 1
    page = client.get_object(Bucket=bucket, Key=f"site/c/{key}/i/{invoice.invoice_id}.html")["Body"].read().decode()
    assert PAID in page
    assert client.get_object(Bucket=bucket, Key=f"site/{REMOTE_MANIFEST}")["LastModified"] == main


PENDING = "Payment pending"


def test_the_nightly_publish_knows_what_a_refresh_put_there(quiet_app, external, store, standin):
    """Rule 1: a bank payment went pending (refreshed onto the target), then failed while no worker ran. The nightly
    build renders the invoice open again, as the main manifest says the target has it; but the target shows the
    refresh's "pending" page, so the publish must upload the build's."""
    cid, invoice, attempt_id = _pay(quiet_app, external, store, standin, "us_bank_account")
    Worker(external, store).drain()
    assert PENDING in invoice_page(external, cid, invoice.invoice_id)
    client = quiet_app.test_client()
    assert send_event(client, intent_event("payment_intent.payment_failed", attempt_id)).status_code == 200
    with store.begin() as conn:
        assert cid in jobqueue.unmerged(conn)  # the main manifest does not know the refresh's files
    render_site(external, store, external.build_dir, workers=1)  # the nightly build, from the store
    publish(external, external.build_dir)
    assert PENDING not in invoice_page(external, cid, invoice.invoice_id)
    with store.begin() as conn:
        assert cid not in jobqueue.unmerged(conn)  # folded into the main manifest now


def test_a_nightly_build_older_than_a_payment_leaves_the_page_to_the_refresh(quiet_app, external, store, standin):
    """Rule 2: the nightly build rendered the customer before the payment; the payment's refresh published first.
    The nightly publish must not put the older page back: it holds the customer back and queues a refresh."""
    render_site(external, store, external.build_dir, workers=1)  # the nightly build, before the payment
    cid, invoice, _ = _pay(quiet_app, external, store, standin)
    Worker(external, store).drain()
    assert PAID in invoice_page(external, cid, invoice.invoice_id)
    assert PAID not in invoice_page(external, cid, invoice.invoice_id, external.build_dir)
    publish(external, external.build_dir)
    assert PAID in invoice_page(external, cid, invoice.invoice_id)
    with store.begin() as conn:
        assert [(r.kind, r.customer_id) for r in conn.execute(select(jobqueue.jobs).where(
            jobqueue.jobs.c.state == jobqueue.QUEUED))] == [("refresh", cid)]
    Worker(external, store).drain()
    assert PAID in invoice_page(external, cid, invoice.invoice_id)


def test_a_payment_during_the_nightly_upload_gets_the_last_word(quiet_app, external, store, standin):
    """Rule 3: the build saw the payment pending; while its publish uploads, the payment settles and the refresh
    publishes "Paid"; the nightly upload then puts "pending" back. It queues a refresh, which writes last."""
    cid, invoice, attempt_id = _pay(quiet_app, external, store, standin, "us_bank_account")
    render_site(external, store, external.build_dir, workers=1)  # the nightly build: pending, not yet refreshed
    client = quiet_app.test_client()

    def settle_meanwhile(done: int, total: int) -> None:
        if done == 0:
            assert send_event(client, intent_event("payment_intent.succeeded", attempt_id)).status_code == 200
            Worker(external, store).drain()  # the refresh publishes "Paid" before the nightly upload
            assert PAID in invoice_page(external, cid, invoice.invoice_id)

    publish(external, external.build_dir, progress=settle_meanwhile)
    assert PENDING in invoice_page(external, cid, invoice.invoice_id)  # the race happened
    outcomes = Worker(external, store).drain()
    assert [(o.job.kind, o.job.customer_id) for o in outcomes] == [("refresh", cid)]
    assert PAID in invoice_page(external, cid, invoice.invoice_id)
