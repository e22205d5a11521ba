"""`portal demo`'s app: the product's app (`create_app`) plus what only a demo may have, so that the whole product
can be tried on one machine without a Stripe account or a mail server:

- the test checkout standing in for Stripe (webhook/demo/checkout.py), which drives the product's real payment
  path: the real `stripe` client, Stripe-signed events to /stripe/events, the job runner's re-render and email;
- the mail viewer (/demo/outbox, webhook/demo/outbox.py);
- a "TEST MODE: no money moves" banner on every HTML page the demo serves.

Nothing maps a setting or an environment variable to this module: `create_app` never imports it, and only
`portal demo` (through `portal serve`'s Python-only `demo` argument, webhook/devserver.py) and the tests call
`create_demo_app`. It refuses settings whose Stripe address is not its own test checkout, so it never runs with a
real Stripe account's keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response

from portal.core.config import Settings
from webhook import create_app
from webhook.demo import checkout, outbox

API_PATH = "/demo/stripe"  # where the demo's settings point the Stripe client (portal/cli/demo.py)
BANNER = ('<div class="demo-banner" role="note" id="demo-banner"><strong>TEST MODE: no money moves.</strong> '
          '<a href="/demo/checkout/">Test payments (settle or fail a bank payment)</a> · '
          '<a href="/demo/outbox/">Emails sent</a> · <a href="/staff/">Staff dashboard</a></div>')
BANNER_CSS = (".demo-banner{background:#fff3c4;color:#1b1f24;border-bottom:2px solid #7a4a00;padding:.5rem 1rem;"
              "font:16px/1.4 system-ui,sans-serif}.demo-banner a{color:#0b4a8c}")
_BODY = re.compile(rb"<body[^>]*>", re.IGNORECASE)


def create_demo_app(settings: Settings, site_dir: str | Path | None = None,
                    config: Mapping[str, Any] | None = None, *, warn: bool = True) -> Flask:
    """The product's app with the demo's parts. `settings` must point Stripe at this app's test checkout with test
    keys (portal/cli/demo.py makes such settings)."""
    expected = f"{settings.effective_webhook_url.rstrip('/')}{API_PATH}"
    if settings.stripe_api_base.rstrip("/") != expected or not settings.stripe_secret_key.startswith("sk_test_"):
        raise ValueError(f"the demo's test checkout needs stripe_api_base = {expected} and a test key (sk_test_...)")
    app = create_app(settings, site_dir=site_dir, config=config, warn=warn)
    checkout.init_app(app)
    app.register_blueprint(outbox.bp)
    app.add_url_rule("/demo/banner.css", "demo_banner_css",
                     lambda: Response(BANNER_CSS, mimetype="text/css", headers={"Cache-Control": "no-cache"}))
    app.after_request(_banner)
    return app


def _banner(response: Response) -> Response:
    """Put the banner at the top of every HTML page (the built site's pages included: in the demo they are served
    from here). Its stylesheet is on this origin, which every page's policy allows."""
    if response.mimetype != "text/html" or response.status_code in (204, 304) or response.is_streamed \
            and not response.direct_passthrough:
        return response
    response.direct_passthrough = False  # a built page is sent as a file: read it to change it, then close it
    source = response.response
    body = response.get_data()
    if hasattr(source, "close"):
        source.close()
    match = _BODY.search(body)
    if match is None:
        return response
    insert = b'<link rel="stylesheet" href="/demo/banner.css">' + BANNER.encode()
    response.set_data(body[:match.end()] + insert + body[match.end():])
    return response
