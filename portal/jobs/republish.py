"""After a payment or a dispute changes state: re-render that customer's pages and publish them, off the request path.

`refresh_customer` is the job; `Republisher` runs such jobs. One background worker per process: renders of the
output folder are serialised anyway (the build locks it: portal/publish/manifest.py `folder_lock`), and a queue
of one thread keeps a burst of events from starting a burst of renders. The work runs after the transaction that
recorded the change has committed, never inside it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from portal.build.pipeline import render_site
from portal.core.config import Settings
from portal.publish.publisher import publish
from portal.store.database import Store

log = logging.getLogger(__name__)


def refresh_customer(settings: Settings, store: Store, customer_id: str) -> None:
    """Re-render one customer into `settings.build_dir` and publish what changed to `settings.target`."""
    result = render_site(settings, store, settings.build_dir, only={customer_id})
    published = publish(settings, settings.build_dir)
    log.info("republished customer %s: %d written; %s", customer_id, len(result.written_paths), published.summary())


class Republisher:
    """Runs jobs (re-render + publish + mail) one at a time in a daemon thread; `wait()` for tests."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="republish")
        self._futures: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None], what: str) -> None:
        def run() -> None:
            try:
                job()
            except Exception:  # noqa: BLE001 - a failed republish must not kill the worker; the nightly build heals it
                log.exception("background job failed: %s", what)

        future = self._pool.submit(run)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait(self, timeout: float = 30) -> None:
        """Block until every job submitted so far has finished."""
        with self._lock:
            pending = set(self._futures)
        wait(pending, timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
