"""gunicorn (2 workers, as deployed) under a small bounded load: every link answers 303 and each 303 has
exactly one `link_opened` row, on SQLite (WAL, two processes writing) and on PostgreSQL. With `--preload`
too: the app is made in the master and the workers fork from it, so each must open its own connections."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from portal.core.signing import Signer
from tests.gunicorn_server import GunicornServer
from tests.webhook_helpers import import_sample

REQUESTS = 300
CLIENT_THREADS = 12


@pytest.mark.timeout(120)
@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-app", "preload"])
def test_gunicorn_records_one_link_opened_per_redirect(settings, store, export_dir, tmp_path, preload):
    ledger = import_sample(store, settings, export_dir)
    signer = Signer(settings)
    invoices = sorted(ledger.invoices.values(), key=lambda i: i.invoice_id)
    contacts = {c.customer_id: c.contact_id for c in ledger.contacts}
    distinct = [signer.link_token(i.customer_id, contacts[i.customer_id], i.invoice_id, 1) for i in invoices]
    distinct += [signer.link_token(cid, contact, "", 1) for cid, contact in contacts.items()]
    tokens = [distinct[n % len(distinct)] for n in range(REQUESTS)]

    env = {
        "PORTAL_DATABASE_URL": settings.database_url, "PORTAL_SECRET_KEY": settings.secret_key,
        "PORTAL_SITE_URL": "http://127.0.0.1:9", "PORTAL_MAIL_URL": f"outbox:{tmp_path / 'outbox'}",
        # One client address sends everything here: the test is about correctness, not the limiter.
        "WEBHOOK_RATE_LIMIT_IP": "100000/60", "WEBHOOK_RATE_LIMIT_TOKEN": "100000/60",
        **({"GUNICORN_CMD_ARGS": "--preload"} if preload else {}),
    }
    local = threading.local()

    def fetch(token: str, base: str) -> int:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        return session.get(f"{base}/l/{token}", allow_redirects=False, timeout=30).status_code

    log = tmp_path / "gunicorn.log"
    with GunicornServer("webhook:create_app()", env, log, workers=2, chdir=tmp_path) as server:
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            codes = Counter(pool.map(lambda t: fetch(t, server.url), tokens))
    assert codes == Counter({303: REQUESTS}), log.read_text(errors="replace")[-3000:]
    assert store.count_events(kind="link_opened") == codes[303]
    assert store.count_events(kind="link_opened", customer_id=invoices[0].customer_id) > 0
