"""`portal autopay`: the cron command that notices and debits what customers chose to pay automatically
(docs/autopay.md).

One run at a time, like the mail commands: a run started while another is going does nothing and exits 75
(EX_TEMPFAIL; portal/store/locks.py). Exit 1 when something needs a look (a mail that did not go, Stripe
unreachable): the next run takes it up again. `--now` runs as of another moment (tests, a catch-up).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from portal.cli.group import PortalContext, pass_portal
from portal.core.errors import PortalError
from portal.store.locks import RunInProgress, exclusive_run

EXIT_RUN_IN_PROGRESS = 75  # EX_TEMPFAIL (sysexits.h)


def _moment(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PortalError(f"--now: {text!r} is not an ISO time (2026-12-01T09:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.command("autopay")
@click.option("--now", "now_text", default=None, help="Run as of this ISO time (default: now).")
@pass_portal
def autopay(portal: PortalContext, now_text: str | None) -> None:
    """Email advance notices, then debit the saved methods of customers who turned autopay on."""
    from portal.payments.autopay_run import run_autopay
    from portal.payments.methods import stripe_client

    now = _moment(now_text)
    settings, store = portal.settings, portal.store()
    ctx = click.get_current_context()
    if not settings.payments_enabled:
        raise PortalError("payments are not configured (STRIPE_SECRET_KEY): autopay cannot debit anything")
    try:
        with exclusive_run(store, "autopay"):
            result = run_autopay(settings, store, stripe_client(settings), now)
    except RunInProgress:
        click.echo("portal autopay: another `portal autopay` run is still in progress; nothing was done. "
                   "Try again when it has finished.", err=True)
        ctx.exit(EXIT_RUN_IN_PROGRESS)
    click.echo(result.summary())
    if not result.ok:
        ctx.exit(1)


COMMANDS = (autopay,)
