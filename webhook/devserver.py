"""`portal serve`: the webhook and the built site on one port, for development (production runs gunicorn:
docs/webhook.md).

A command of the `portal` group that lives with the webhook, because nothing in `portal` may import the web layer:
pyproject.toml declares it as the `portal.commands` entry point `serve`, and the group (portal/cli/group.py) loads
it when `portal serve` (or `portal demo`, to serve what it built) names it.
"""

from __future__ import annotations

import click

from portal.cli.group import PortalContext, pass_portal
from webhook import create_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--site", "site_dir", default=None, type=click.Path(file_okay=False),
              help="The built site to serve next to the webhook (default: build_dir).")
@pass_portal
def serve(portal: PortalContext, host: str, port: int, site_dir: str) -> None:
    """Run the webhook and the built site on one port (development only; production uses gunicorn)."""
    settings = portal.settings
    portal.store()  # create or upgrade the schema first: the app itself never migrates (workers would race)
    app = create_app(settings, site_dir=site_dir or settings.build_dir)
    click.echo(f"serving on http://{host}:{port}/ (Ctrl+C to stop)")
    app.run(host=host, port=port, debug=False, use_reloader=False)
