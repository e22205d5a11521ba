"""`portal serve`: the webhook and the built site on one port, for development (production runs gunicorn:
docs/webhook.md).

A command of the `portal` group that lives with the webhook, because nothing in `portal` may import the web layer:
pyproject.toml declares it as the `portal.commands` entry point `serve`, and the group (portal/cli/group.py) loads
it when `portal serve` (or `portal demo`, to serve what it built) names it.

`portal demo` also passes `demo=True`, a Python argument with no command-line option or setting behind it: only then
is the demo's app served (webhook/demo: the test checkout, the mail viewer), and the demo's history seeded.
"""

from __future__ import annotations

import threading

import click
from werkzeug.serving import make_server

from portal.cli.group import PortalContext, pass_portal
from webhook import create_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--site", "site_dir", default=None, type=click.Path(file_okay=False),
              help="The built site to serve next to the webhook (default: build_dir).")
@pass_portal
def serve(portal: PortalContext, host: str, port: int, site_dir: str, demo: bool = False) -> None:
    """Run the webhook and the built site on one port (development only; production uses gunicorn)."""
    settings = portal.settings  # loading them printed the insecure-setting warnings: the app does not repeat them
    portal.store()  # create or upgrade the schema first: the app itself never migrates (workers would race)
    site = site_dir or settings.build_dir
    if not demo:
        app = create_app(settings, site_dir=site, warn=False)
        click.echo(f"serving on http://{host}:{port}/ (Ctrl+C to stop)")
        app.run(host=host, port=port, debug=False, use_reloader=False)
        return
    from webhook.demo import create_demo_app
    from webhook.demo.seed import seed_history

    app = create_demo_app(settings, site_dir=site, warn=False)
    server = make_server(host, port, app, threaded=True)
    # The history is made through the served app (the test checkout calls /stripe/events over HTTP), so after
    # the server is listening; the links work meanwhile.
    threading.Thread(target=seed_history, args=(app, portal.store()), daemon=True, name="demo-seed").start()
    click.echo(f"serving on http://{host}:{port}/ (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
