"""`portal send`, `portal remind`, `portal digest`, `portal mail bounces`: the mail commands (docs/email.md,
docs/collect.md for bounces).

Registered on the `portal` group by portal/cli/main.py, like every command group. Each prints one line per
message and a summary, and exits 1 when a message failed or was not attempted (cron then reports it). A run
started while another run of the same command is still going sends nothing and exits 75 (EX_TEMPFAIL: try
again later; see portal/store/locks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from portal.cli.group import PortalContext, pass_portal
from portal.mail.delivery import SendResult
from portal.store.locks import RunInProgress, exclusive_run

if TYPE_CHECKING:
    from portal.store.database import Store

EXIT_RUN_IN_PROGRESS = 75  # EX_TEMPFAIL (sysexits.h)


def _run(store: Store, name: str, dry_run: bool, work: Callable[[], SendResult]) -> None:
    """Run `work` holding the command's lock (not for a dry run), print its report, exit 1 if anything failed."""
    ctx = click.get_current_context()
    try:
        if dry_run:
            result = work()
        else:
            with exclusive_run(store, name):
                result = work()
    except RunInProgress:
        click.echo(f"portal {name}: another `portal {name}` run is still in progress; nothing was sent. "
                   "Try again when it has finished.", err=True)
        ctx.exit(EXIT_RUN_IN_PROGRESS)
    click.echo(result.summary())
    if not result.ok:
        ctx.exit(1)


@click.command("send")
@click.option("--dry-run", is_flag=True, help="List the messages that would be sent; send and record nothing.")
@click.option("--customer", "customer_ids", multiple=True, help="Only this customer (repeatable).")
@click.option("--resend", is_flag=True, help="Send every open invoice again, even unchanged ones.")
@pass_portal
def send(portal: PortalContext, dry_run: bool, customer_ids: tuple[str, ...], resend: bool) -> None:
    """Email each billing and approver contact its new or changed open invoices, with signed links."""
    from portal.mail.sending import send_invoices

    settings, store = portal.settings, portal.store()
    _run(store, "send", dry_run, lambda: send_invoices(settings, store, dry_run=dry_run,
                                                       customer_ids=customer_ids or None, resend=resend))


@click.command("remind")
@click.option("--dry-run", is_flag=True, help="List the reminders that would be sent; send and record nothing.")
@pass_portal
def remind(portal: PortalContext, dry_run: bool) -> None:
    """Send the payment reminders the configured rules call for today."""
    from portal.collect.plans import judge_plans
    from portal.collect.promises import settle_promises
    from portal.mail.reminders import send_reminders

    settings, store = portal.settings, portal.store()
    if not dry_run:  # judge promises first: a broken one's invoices are chased again (docs/collect.md)
        decided = settle_promises(store, settings)
        if decided:
            kept = sum(1 for status in decided.values() if status == "kept")
            click.echo(f"promises: {kept} kept, {len(decided) - kept} broken")
        plans = judge_plans(store, settings)
        if any(plans.values()):
            click.echo(f"payment plans: {plans['kept']} paid in full, {plans['missed']} instalment(s) missed")
    _run(store, "remind", dry_run, lambda: send_reminders(settings, store, dry_run=dry_run))


@click.command("digest")
@click.option("--dry-run", is_flag=True, help="List the digests that would be sent; send nothing.")
@pass_portal
def digest(portal: PortalContext, dry_run: bool) -> None:
    """Email each collector the invoices nobody viewed, new disputes and failed payments."""
    from portal.staff.digest import send_digest

    settings, store = portal.settings, portal.store()
    _run(store, "digest", dry_run, lambda: send_digest(settings, store, dry_run=dry_run))


@click.group("mail")
def mail() -> None:
    """Mail that came back: bounces."""


@mail.command("bounces")
@click.argument("path", type=click.Path(path_type=Path))
@pass_portal
def bounces(portal: PortalContext, path: Path) -> None:
    """Record the bounces reported in PATH: delivery status notifications in an mbox file or a Maildir, or a file
    of SES bounce notifications (JSON).

    Idempotent: a bounce already recorded is not recorded again. Notifications that match no message the portal
    sent, or are malformed, are listed; they do not fail the run.
    """
    from portal.mail.bounces import read_bounces

    click.echo(read_bounces(portal.store(), path).summary())


COMMANDS = (send, remind, digest, mail)
