"""`portal demo`: sample data -> build -> serve, printing a few customer links to open and a staff login
(README.md, "Two commands").

The demo runs the whole product on one machine with nothing real behind it: payments go to a local test
checkout standing in for Stripe (test keys made up here, the Stripe address the demo's own /demo/stripe), and
mail goes to an outbox folder the demo shows at /demo/outbox. Its settings replace whatever the configuration says
for these, so a demo never reaches a real Stripe account or mail server.

Serving is `portal serve`'s job, which belongs to the webhook (webhook/devserver.py): the demo looks it up on the
`portal` group by name and invokes it with `demo=True` (no option or setting maps to it), so nothing here imports
the web layer.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from portal.cli.group import PortalContext, pass_portal
from portal.core.config import Settings


@click.command()
@click.option("--folder", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the sample export goes.")
@click.option("--customers", default=12, show_default=True, type=click.IntRange(1))
@click.option("--invoices", default=40, show_default=True, type=click.IntRange(1))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Build and print the links, then exit.")
@pass_portal
def demo(portal: PortalContext, folder: str, customers: int, invoices: int, host: str, port: int,
         no_serve: bool) -> None:
    """Sample data -> build -> serve, printing a few customer links to open."""
    from portal.build.pipeline import build as run_build
    from portal.core.links import contact_links
    from portal.export.sample import write_sample
    from portal.staff.users import StaffError, add_user, update_user

    settings = portal.settings
    if settings.site_url == "http://127.0.0.1:8000" and (host, port) != ("127.0.0.1", 8000):
        settings = settings.replace(site_url=f"http://{host}:{port}")
    settings = demo_settings(settings, Path(folder))
    portal.use_settings(settings)
    export = Path(folder) / "export"
    write_sample(export, customers, invoices)
    store = portal.store()
    result = run_build(export, settings.build_dir, settings, store=store)
    click.echo(f"sample export in {export}; {result.summary()}")
    click.echo("\nOpen one of these customer links (each is a signed link as emailed to a contact):")
    for row in contact_links(settings, store.customer_data(), False)[:5]:
        click.echo(f"  {row[0]}  {row[2]:<34} {row[4]}")
    password = secrets.token_urlsafe(12)
    try:
        add_user(store, STAFF_EMAIL, password, "admin")
    except StaffError:  # a demo run before made it: a new password, printed below
        update_user(store, STAFF_EMAIL, password=password, role="admin", active=True)
    webhook = settings.effective_webhook_url
    click.echo(f"\nAR staff dashboard: {webhook}/staff/  log in as {STAFF_EMAIL}, password {password}")
    click.echo(f"TEST MODE: no money moves. Pay on a customer's page; settle or fail bank payments at "
               f"{webhook}/demo/checkout/ ; the emails sent are at {webhook}/demo/outbox/")
    if not no_serve:
        click.echo("")
        ctx = click.get_current_context()
        serve = ctx.find_root().command.get_command(ctx, "serve")  # type: ignore[attr-defined]
        if serve is None:
            raise click.UsageError("`portal serve` is not installed (reinstall ar-portal); try --no-serve")
        ctx.invoke(serve, host=host, port=port, site_dir=settings.build_dir, demo=True)


STAFF_EMAIL = "admin@example.com"


def demo_settings(settings: Settings, folder: Path) -> Settings:
    """The demo's payments and mail: a test key and webhook secret made up for this run, the Stripe address the
    demo's own test checkout (webhook/demo), and the emails into `folder`/outbox."""
    webhook = settings.effective_webhook_url.rstrip("/")
    return settings.replace(stripe_secret_key=f"sk_test_demo_{secrets.token_hex(12)}",
                            stripe_webhook_secret=f"whsec_demo_{secrets.token_hex(16)}",
                            stripe_api_base=f"{webhook}/demo/stripe", mail_url=f"outbox:{folder / 'outbox'}")
