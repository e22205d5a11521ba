"""`portal demo`: sample data -> build -> serve, printing a few customer links to open (README.md, "Two commands").

Serving is `portal serve`'s job, which belongs to the webhook (webhook/devserver.py): the demo looks it up on the
`portal` group by name and invokes it, so nothing here imports the web layer.
"""

from __future__ import annotations

from pathlib import Path

import click

from portal.cli.group import PortalContext, pass_portal


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

    settings = portal.settings
    if settings.site_url == "http://127.0.0.1:8000" and (host, port) != ("127.0.0.1", 8000):
        settings = settings.replace(site_url=f"http://{host}:{port}")
        portal.use_settings(settings)
    export = Path(folder) / "export"
    write_sample(export, customers, invoices)
    store = portal.store()
    result = run_build(export, settings.build_dir, settings, store=store)
    click.echo(f"sample export in {export}; {result.summary()}")
    click.echo("\nOpen one of these customer links (each is a signed link as emailed to a contact):")
    for row in contact_links(settings, store.customer_data(), False)[:5]:
        click.echo(f"  {row[0]}  {row[2]:<34} {row[4]}")
    click.echo(f"\nAR staff dashboard: {settings.effective_webhook_url}/staff/ "
               "(make an account first: portal staff add YOU@EXAMPLE.COM --role admin)")
    if not no_serve:
        click.echo("")
        ctx = click.get_current_context()
        serve = ctx.find_root().command.get_command(ctx, "serve")  # type: ignore[attr-defined]
        if serve is None:
            raise click.UsageError("`portal serve` is not installed (reinstall ar-portal); try --no-serve")
        ctx.invoke(serve, host=host, port=port, site_dir=settings.build_dir)
