"""`portal db upgrade`: the store's schema, and the staff dashboard's receipt rollup brought up to date with it.

Run it before starting webhook workers: the webhook itself never migrates (workers would race).
"""

from __future__ import annotations

import click

from portal.cli.group import PortalContext, pass_portal


@click.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@pass_portal
def db_upgrade(portal: PortalContext) -> None:
    """Create or upgrade the database schema to the newest version, and bring the staff dashboard's receipt
    rollup up to date (the first time, that reads every event: better here than on a staff request)."""
    from portal.staff.receiptrollup import refresh

    store = portal.store()
    click.echo("the database schema is up to date")
    done = refresh(store)
    click.echo(f"receipt rollup: {'built' if done.full else 'refreshed'} ({done.new_events} new events)")
