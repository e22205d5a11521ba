"""webhook/jobs.py: the webhook's work after an answer runs on ONE background runner per app."""

from __future__ import annotations

from portal.jobs.republish import Republisher
from tests.payfixtures import attempt_id_sent, page_token, post_pay, send_event, session_completed, usd_customer
from tests.webhook_helpers import make_app


def test_payment_and_dispute_jobs_queue_on_the_one_runner(built, store, standin, tmp_path, monkeypatch):
    settings = built.replace(ar_inbox="ar-team@example.com")
    with make_app(settings, tmp_path) as app:
        runner = app.extensions["jobs"]
        # Two runners would re-render one customer's pages at the same time; one queues them.
        assert [e for e in app.extensions.values() if isinstance(e, Republisher)] == [runner]
        queued = []
        submit = runner.submit
        monkeypatch.setattr(runner, "submit", lambda job, what: (queued.append(what.split()[0]), submit(job, what)))
        client = app.test_client()
        customer_id, invoices = usd_customer(store)
        disputed = client.post("/dispute", data={"page_token": page_token(settings, customer_id), "reason": "pricing",
                                                 "dispute_invoice": invoices[1].invoice_id, "message": "Wrong price"})
        assert disputed.status_code == 200
        assert post_pay(client, settings, customer_id, [invoices[0].invoice_id]).status_code == 303
        assert send_event(client, session_completed(attempt_id_sent(standin))).status_code == 200
        runner.wait()
    assert queued == ["mail", "republish", "republish", "mail"]
