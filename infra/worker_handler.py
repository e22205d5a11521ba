"""AWS Lambda entry point of the refresh queue's worker (handler `infra/worker_handler.handler`).

The jobs live in the store (portal/store/jobqueue.py), recorded in the transaction of the event that caused them;
SQS only wakes this function (webhook/jobs.py sends a message after the commit) and EventBridge Scheduler invokes
it every minute with `{"sweep": true}` (a wake-up lost, a retry come due, a job whose worker was stopped). Either
way the function runs every due job until the queue is empty or its time is nearly up.

For an SQS batch, a record is reported failed (`batchItemFailures`) only when the queue could not be worked at
all (the database or the target unreachable): SQS then delivers it again, and after five receives moves it to the
dead-letter queue, whose alarm tells the operators. A job that fails on its own is retried by the store's queue
with backoff and, after `job_attempts` runs, stays `failed` with its error (`portal jobs` lists them), logged
at ERROR.

Everything expensive happens once per execution environment (the cold start): the secrets, the settings, the
store's pool, the templates (on the first refresh).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from infra.secrets import load_secrets

log = logging.getLogger("portal.worker")
MARGIN_SECONDS = 10  # stop taking new jobs this long before Lambda's timeout


def make_worker() -> Any:
    import portal.balances.stored  # noqa: F401 - the derived tables' followers (portal/store/derived.py)
    import portal.staff.receiptlines  # noqa: F401
    from portal.core.config import load_settings
    from portal.jobs.worker import Worker
    from portal.store.database import Store

    settings = load_settings()
    return Worker(settings, Store(settings.database_url), name="lambda")


def make_handler(worker: Any) -> Any:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60.0
        deadline = time.monotonic() + max(1.0, remaining - MARGIN_SECONDS)
        records = event.get("Records") or []
        try:
            outcomes = worker.drain(deadline=deadline)
        except Exception:  # noqa: BLE001 - the queue could not be worked: let SQS deliver the wake-ups again
            log.exception("refresh worker: the queue could not be worked")
            return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if "messageId" in r]}
        failed = sum(1 for o in outcomes if not o.ok)
        log.info("refresh worker: %d job(s) run, %d failed (%s)", len(outcomes), failed,
                 "sweep" if event.get("sweep") else f"{len(records)} wake-up(s)")
        return {"batchItemFailures": []}

    return handler


def _cold_start() -> Any:
    load_secrets()
    return make_handler(make_worker())


handler = _cold_start()
