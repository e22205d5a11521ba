"""webhook/jobs.py: the jobs a route records run on ONE background runner per app (job_runner = "thread"), or on
none at all (job_runner = "external": a worker process runs them)."""

from __future__ import annotations

from portal.jobs.worker import ThreadRunner
from portal.store import jobqueue
from tests.payfixtures import attempt_id_sent, page_token, post_pay, send_event, session_completed, usd_customer
from tests.webhook_helpers import make_app


def _kinds(store):
    with store.begin() as conn:
        return [(r.kind, r.state) for r in conn.execute(jobqueue.jobs.select().order_by(jobqueue.jobs.c.job_id))]


def test_payment_and_dispute_jobs_are_recorded_and_run_by_the_one_runner(built, store, standin, tmp_path):
    settings = built.replace(ar_inbox="ar-team@example.com")
    with make_app(settings, tmp_path) as app:
        runner = app.extensions["jobs"]
        # Two runners in one process would only compete for the same queue: one drains it.
        assert [e for e in app.extensions.values() if isinstance(e, ThreadRunner)] == [runner]
        client = app.test_client()
        customer_id, invoices = usd_customer(store)
        disputed = client.post("/dispute", data={"page_token": page_token(settings, customer_id), "reason": "pricing",
                                                 "dispute_invoice": invoices[1].invoice_id, "message": "Wrong price"})
        assert disputed.status_code == 200
        assert post_pay(client, settings, customer_id, [invoices[0].invoice_id]).status_code == 303
        assert send_event(client, session_completed(attempt_id_sent(standin))).status_code == 200
        runner.wait()
    assert _kinds(store) == [("refresh", "done"), ("dispute_mail", "done"), ("refresh", "done"),
                             ("payment_mail", "done")]


def test_with_an_external_runner_the_webhook_answers_and_leaves_the_jobs_queued(built, store, standin, tmp_path):
    settings = built.replace(job_runner="external")
    with make_app(settings, tmp_path) as app:
        assert "jobs" not in app.extensions
        client = app.test_client()
        customer_id, invoices = usd_customer(store)
        assert post_pay(client, settings, customer_id, [invoices[0].invoice_id]).status_code == 303
        assert send_event(client, session_completed(attempt_id_sent(standin))).status_code == 200
    assert _kinds(store) == [("refresh", "queued"), ("payment_mail", "queued")]
