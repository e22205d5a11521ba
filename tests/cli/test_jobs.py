"""`portal worker` and `portal jobs` (portal/cli/jobs.py) on a built site: the worker runs what the queue holds and
publishes the customer; `portal jobs` counts the queue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from portal.core.signing import Signer
from portal.publish.customer import customer_manifest_name
from portal.store import jobqueue
from portal.store.database import Store
from tests.conftest import make_settings


def test_portal_worker_once_runs_a_queued_refresh_and_portal_jobs_counts_it(run, tmp_path, db_url):
    assert run("sample-data", "export", "--customers", "3", "--invoices", "6").exit_code == 0
    assert run("build", "export", "--workers", "1").exit_code == 0
    store = Store(db_url)
    with store.begin() as conn:
        jobqueue.enqueue_refresh(conn, "C00002", datetime.now(UTC))
    store.close()
    counted = run("jobs")
    assert counted.exit_code == 0 and counted.output.startswith("jobs: 1 queued, 0 running, 0 done, 0 failed; 1 due")
    worked = run("worker", "--once")
    assert worked.exit_code == 0 and "ran 1 job(s), 0 failed" in worked.output
    # The default target is the build folder: the refresh published the customer there, with its own manifest.
    key = Signer(make_settings(db_url)).customer_key("C00002", 1)  # the CLI's secret is the tests' (conftest)
    assert (Path(tmp_path) / "build" / customer_manifest_name(key)).is_file()
    assert run("jobs").output.startswith("jobs: 0 queued, 0 running, 1 done, 0 failed; 0 due")
