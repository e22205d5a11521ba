"""`portal worker` and `portal jobs`: running the refresh queue and looking at it (docs/refresh.md).

`portal worker` is long-running: it runs every due job (re-render and publish a customer, send an email), then
looks again every `--poll` seconds, until SIGTERM or Ctrl-C, which let the job in hand finish. Several may run at
once, on one machine or many: jobs are claimed in the store. `--once` runs what is due and exits (cron, tests);
its exit status is 1 when a job failed.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import click

from portal.cli.group import PortalContext, pass_portal


@click.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds between looks at the queue when it is empty.")
@pass_portal
def worker(portal: PortalContext, once: bool, poll: float) -> None:
    """Run the jobs that follow payments and disputes: re-render and publish customers, send their emails."""
    from portal.jobs.worker import Worker

    runner = Worker(portal.settings, portal.store())
    if once:
        outcomes = runner.drain()
        failed = [o for o in outcomes if not o.ok]
        click.echo(f"ran {len(outcomes)} job(s), {len(failed)} failed")
        for outcome in failed:
            click.echo(f"job {outcome.job.job_id} ({outcome.job.kind}, customer {outcome.job.customer_id}): "
                       f"{outcome.error}", err=True)
        sys.exit(1 if failed else 0)
    stopping = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"portal worker {runner.name}: running jobs (SIGTERM or Ctrl-C stops after the job in hand)")
    runner.run_forever(poll, stopping.is_set)
    click.echo("portal worker: stopped")


@click.command("jobs")
@pass_portal
def jobs(portal: PortalContext) -> None:
    """Count the queue's jobs by state, and list the failed ones with their errors."""
    from sqlalchemy import select

    from portal.store import jobqueue

    with portal.store().begin() as conn:
        counts = jobqueue.counts(conn)
        due = len(jobqueue.due_ids(conn, datetime.now(UTC)))
        failed = conn.execute(select(jobqueue.jobs).where(jobqueue.jobs.c.state == jobqueue.FAILED)
                              .order_by(jobqueue.jobs.c.job_id)).all()
    states = ", ".join(f"{counts.get(s, 0)} {s}" for s in (jobqueue.QUEUED, jobqueue.RUNNING, jobqueue.DONE,
                                                         jobqueue.FAILED))
    click.echo(f"jobs: {states}; {due} due now")
    for row in failed:
        click.echo(f"failed: job {row.job_id} {row.kind} customer {row.customer_id} after {row.attempts} runs: "
                   f"{row.last_error}")


COMMANDS = (worker, jobs)
