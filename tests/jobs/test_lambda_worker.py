"""The worker Lambda (infra/worker_handler.handler) with a real SQS queue: moto's server mode on loopback, reached
through boto3 as AWS would be (nothing security-relevant is checked against it).

- The webhook (job_runner = "external", job_queue_url) answers Stripe, records the jobs and sends a wake-up to the
  queue; the handler, cold-started from PORTAL_* variables and called with the SQS event made from the messages
  received, runs the jobs: the page shows the payment, the payer is mailed, nothing fails.
- A sweep (`{"sweep": true}`, the schedule) runs jobs whose wake-up never came.
- When the queue cannot be worked at all (the database is unreachable), every record of the batch is reported
  failed, so SQS delivers the wake-ups again.
- When the wake-up cannot be sent, Stripe still gets its 200 and the jobs wait in the store for the sweep.
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import select

from portal.store import jobqueue
from tests.conftest import make_settings
from tests.jobs.conftest import settings_env
from tests.payfixtures import attempt_id_sent, invoice_page, post_pay, send_event, session_completed, usd_customer
from tests.ports import free_port
from tests.webhook_helpers import make_app, outbox_messages

# A paid invoice's badge says when it was paid ("Paid on DATE", issue 20).
PAID = '<span class="badge badge-paid">Paid on '
PAYER = "payer@pay.example"
_queues = itertools.count(1)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def queue(moto_server: str, monkeypatch, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """(an SQS client, the URL of a fresh queue), with boto3 pointed at moto: the webhook and the handler find it
    through the environment, as in AWS."""
    from webhook import jobs as webhook_jobs

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ENDPOINT_URL_SQS": moto_server, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("sqs")
    url = client.create_queue(QueueName=f"refresh-{next(_queues)}")["QueueUrl"]
    webhook_jobs._sqs.cache_clear()  # the webhook keeps one client per queue URL: made afresh in this environment
    try:
        yield client, url
    finally:
        webhook_jobs._sqs.cache_clear()
        client.close()


@pytest.fixture
def cold_start(monkeypatch, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`cold_start(settings)`: infra.worker_handler imported fresh (a new execution environment) with `settings` as
    PORTAL_* variables, its mail going to tmp_path/lambda/outbox; returns its `handler`."""
    loaded: list[Any] = []

    def start(settings, **env: str) -> Any:
        monkeypatch.chdir(tmp_path)  # no portal.toml from elsewhere
        for name in [n for n in os.environ if n.startswith(("PORTAL_", "STRIPE_", "WEBHOOK_"))]:
            monkeypatch.delenv(name)
        for name, value in {**settings_env(settings), "PORTAL_MAIL_URL": f"outbox:{tmp_path / 'lambda' / 'outbox'}",
                            **env}.items():
            monkeypatch.setenv(name, value)
        for module in ("infra.worker_handler", "infra.lambda_handler"):
            monkeypatch.delitem(sys.modules, module, raising=False)
        module = importlib.import_module("infra.worker_handler")
        loaded.append(module.handler)
        return module.handler

    try:
        yield start
    finally:
        for handler in loaded:  # the store the cold start opened, found where the handler keeps it
            for cell in handler.__closure__ or ():
                store = getattr(cell.cell_contents, "store", None)
                if store is not None:
                    store.close()
        for module in ("infra.worker_handler", "infra.lambda_handler"):
            sys.modules.pop(module, None)


class Context:
    """What the handler asks of Lambda's context object."""

    def __init__(self, seconds: float = 60):
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def received(client, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                        AttributeNames=["All"])
        if not answer.get("Messages"):
            return messages
        messages += answer["Messages"]


def sqs_event(client, url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda's SQS trigger hands the function for these messages."""
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                         "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                         "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"}
                        for m in messages]}


def pay_by_card(app, settings, store, standin) -> tuple[str, str]:
    """A customer pays its first invoice; the webhook answers Stripe 200. Returns (customer, invoice)."""
    customer_id, invoices = usd_customer(store)
    client = app.test_client()
    assert post_pay(client, settings, customer_id, [invoices[0].invoice_id]).status_code in (302, 303)
    event = session_completed(attempt_id_sent(standin), email=PAYER)
    assert send_event(client, event).status_code == 200
    return customer_id, invoices[0].invoice_id


def job_states(store) -> list[tuple[str, str]]:
    with store.begin() as conn:
        return [(r.kind, r.state) for r in conn.execute(select(jobqueue.jobs).order_by(jobqueue.jobs.c.job_id))]


def test_an_sqs_wake_up_runs_the_payments_jobs(external, store, standin, queue, cold_start, tmp_path):
    client, url = queue
    settings = external.replace(job_queue_url=url)
    with make_app(settings, tmp_path) as app:
        customer_id, invoice_id = pay_by_card(app, settings, store, standin)
    assert job_states(store) == [("refresh", "queued"), ("payment_mail", "queued")]  # answered; nothing ran
    assert PAID not in invoice_page(settings, customer_id, invoice_id)
    messages = received(client, url)
    assert {"customer_id": customer_id} in [json.loads(m["Body"]) for m in messages]
    handler = cold_start(settings)
    assert handler(sqs_event(client, url, messages), Context()) == {"batchItemFailures": []}
    assert PAID in invoice_page(settings, customer_id, invoice_id)
    assert job_states(store) == [("refresh", "done"), ("payment_mail", "done")]
    assert [str(m["To"]) for m in outbox_messages(tmp_path / "lambda")] == [PAYER]
    assert outbox_messages(tmp_path) == []  # the webhook itself sent nothing


def test_a_sweep_runs_the_jobs_whose_wake_up_never_came(quiet_app, external, store, standin, cold_start, tmp_path):
    customer_id, invoice_id = pay_by_card(quiet_app, external, store, standin)  # no queue: no wake-up at all
    handler = cold_start(external)
    assert "infra.lambda_handler" not in sys.modules  # the worker's cold start builds no webhook app
    assert handler({"sweep": True}, Context()) == {"batchItemFailures": []}
    assert PAID in invoice_page(external, customer_id, invoice_id)
    assert job_states(store) == [("refresh", "done"), ("payment_mail", "done")]
    assert [str(m["To"]) for m in outbox_messages(tmp_path / "lambda")] == [PAYER]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_when_the_database_is_unreachable_every_wake_up_is_delivered_again(database, queue, cold_start, tmp_path,
                                                                           caplog):
    client, url = queue
    for n in range(3):
        client.send_message(QueueUrl=url, MessageBody=json.dumps({"customer_id": f"C0000{n + 1}"}))
    messages = received(client, url)
    assert len(messages) == 3
    unreachable = (f"sqlite:///{tmp_path / 'no-such-folder' / 'portal.db'}" if database == "sqlite"
                   else f"postgresql://portal@127.0.0.1:{free_port()}/portal")  # nothing listens there
    handler = cold_start(make_settings(unreachable, target=str(tmp_path / "site")))
    with caplog.at_level(logging.ERROR, logger="portal.worker"):
        answer = handler(sqs_event(client, url, messages), Context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
    assert "the queue could not be worked" in caplog.text


def test_a_wake_up_that_cannot_be_sent_leaves_stripes_answer_and_the_jobs_alone(external, store, standin, queue,
                                                                                tmp_path, caplog):
    client, url = queue
    settings = external.replace(job_queue_url=url.rsplit("/", 1)[0] + "/no-such-queue")
    with caplog.at_level(logging.WARNING, logger="webhook.jobs"), make_app(settings, tmp_path) as app:
        customer_id, _ = pay_by_card(app, settings, store, standin)  # Stripe got its 200
    assert f"wake-up for customer {customer_id} not sent" in caplog.text
    assert job_states(store) == [("refresh", "queued"), ("payment_mail", "queued")]  # waiting for the sweep
    assert received(client, url) == []
