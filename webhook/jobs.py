"""The webhook's side of the refresh queue: after a route's transaction recorded jobs (portal/store/jobqueue.py),
make sure something runs them soon.

- job_runner = "thread" (one machine, `portal serve`): ONE runner per app, `app.extensions["jobs"]`
  (portal.jobs.worker.ThreadRunner), woken here; it drains the store's queue in a background thread.
- job_runner = "external": `portal worker` processes or the worker Lambda run them. With `job_queue_url` set, a
  wake-up message is sent to that SQS queue, which feeds the worker Lambda; if sending fails, the job is still in
  the store, and the worker's one-minute sweep runs it.

Either way the route has already answered from what it committed: nothing here can lose or undo a job. Tests
wait for the thread runner with `app.extensions["jobs"].wait()`.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

from flask import Flask, current_app

from portal.jobs.worker import ThreadRunner
from webhook.services import services

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    s = app.extensions["portal"]
    if s.settings.job_runner == "thread":
        app.extensions["jobs"] = ThreadRunner(s.settings, s.store, _LazyMailer(s))


class _LazyMailer:
    """The app's mail transport, asked for only when a job sends (services create it on first use)."""

    def __init__(self, s: Any):
        self._services = s

    def send(self, message: Any) -> str:
        return self._services.mailer.send(message)


def jobs_recorded(customer_id: str = "") -> None:
    """Call after a transaction that may have queued jobs (for `customer_id`, when known) has committed."""
    settings = services().settings
    runner = current_app.extensions.get("jobs")
    if runner is not None:
        runner.wake()
    if settings.job_queue_url:
        try:
            _sqs(settings.job_queue_url).send_message(QueueUrl=settings.job_queue_url,
                                                       MessageBody=json.dumps({"customer_id": customer_id}))
        except Exception as exc:  # noqa: BLE001 - the job is safe in the store; the sweep runs it within a minute
            log.warning("refresh queue: wake-up for customer %s not sent (%s); the sweep will run its jobs",
                        customer_id, exc.__class__.__name__)


@lru_cache(maxsize=1)
def _sqs(queue_url: str) -> Any:
    import boto3  # only on deployments that use SQS

    region = queue_url.split("//", 1)[-1].split(".")[1] if ".amazonaws.com" in queue_url else None
    return boto3.client("sqs", region_name=region)
