"""Headers, rate limits, the static site's boundaries, logs without secrets, and the one error handler."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import func, select

from portal.core.config import load_settings
from portal.core.signing import CanonicalTimedSerializer, Signer
from portal.store.disputes import questions
from tests.ports import free_port
from tests.tokens import respellings
from tests.webhook_helpers import RELAXED, all_events, import_sample, make_app, outbox_messages
from webhook.logs import JsonFormatter, RedactFilter, redact, token_ref
from webhook.ratelimit import Limit, MemoryRateLimitStore, RateLimiter

REPO = Path(__file__).resolve().parents[2]
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


@pytest.fixture
def site(tmp_path):
    """A tiny built site: a page, an asset, a private document and the build's dot-files."""
    root = tmp_path / "site"
    (root / "c" / "k1" / "i").mkdir(parents=True)
    (root / "c" / "k1" / "index.html").write_text("<!doctype html><title>p</title>")
    (root / "c" / "k1" / ".index.html.123.tmp").write_text("partial")
    (root / "assets").mkdir()
    (root / "assets" / "extra.css").write_text("body{}")
    (root / "docs" / "k1").mkdir(parents=True)
    (root / "docs" / "k1" / ("a" * 64 + ".pdf")).write_bytes(b"%PDF-1.4 private")
    (root / ".manifest.json").write_text("{}")
    return root


@pytest.fixture
def client(settings, tmp_path, ledger, site):
    with make_app(settings, tmp_path, site_dir=site) as app:
        yield app.test_client()


def _check_headers(response):
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp


def test_every_kind_of_response_carries_the_security_headers(client, ledger, settings):
    signer = Signer(settings)
    customer = sorted(ledger.customers)[0]
    responses = [
        client.get(f"/l/{signer.link_token(customer, 'c1', '', 1)}"),  # 303
        client.post(f"/r/{signer.page_token('view', customer, 1, 'account')}"),  # 204
        client.get("/l/nonsense"),  # 404 page
        client.get(f"/r/{signer.page_token('view', customer, 1, 'account')}"),  # 405
        client.get("/c/k1/index.html"),  # a page of the site
        client.get("/assets/extra.css"),
        client.get("/healthz"),
    ]
    assert [r.status_code for r in responses] == [303, 204, 404, 405, 200, 200, 200]
    for response in responses:
        _check_headers(response)
        response.close()
    assert "Strict-Transport-Security" not in responses[0].headers
    assert responses[0].headers["Cache-Control"] == "no-store"


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    secure = client.get("/healthz", base_url="https://portal.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_proxy_fix_trusts_only_the_configured_hops(settings, tmp_path, ledger):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with make_app(settings, tmp_path) as app:
        assert "Strict-Transport-Security" not in app.test_client().get("/healthz", headers=forwarded).headers
    with make_app(settings, tmp_path, PROXY_FIX=1) as app:
        assert "Strict-Transport-Security" in app.test_client().get("/healthz", headers=forwarded).headers


# --- rate limits ---------------------------------------------------------------------------------------


def test_one_token_is_limited_and_answers_429_with_retry_after(settings, tmp_path, store, ledger):
    customer = sorted(ledger.customers)[0]
    token = Signer(settings).link_token(customer, "c1", "", 1)
    with make_app(settings, tmp_path, RATE_LIMIT_TOKEN="3/60") as app:
        client = app.test_client()
        codes = [client.get(f"/l/{token}").status_code for _ in range(5)]
        assert codes == [303, 303, 303, 429, 429]
        limited = client.get(f"/l/{token}")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        _check_headers(limited)
        assert b"Too many requests" in limited.data
        # Another token is still fine.
        assert client.get(f"/l/{Signer(settings).link_token(customer, 'c2', '', 1)}").status_code == 303
    assert store.count_events(kind="link_opened") == 4


def test_one_address_is_limited_across_routes_and_tokens(settings, tmp_path, ledger):
    signer = Signer(settings)
    customer = sorted(ledger.customers)[0]
    with make_app(settings, tmp_path, RATE_LIMIT_IP="4/60") as app:
        client = app.test_client()
        codes = [client.get(f"/l/{signer.link_token(customer, f'c{n}', '', 1)}").status_code for n in range(3)]
        codes.append(client.post(f"/r/{signer.page_token('view', customer, 1, 'account')}").status_code)
        codes.append(client.get("/l/random-guess").status_code)
        beacon = client.post(f"/r/{signer.page_token('view', customer, 1, 'statement')}")
        assert codes == [303, 303, 303, 204, 429] and beacon.status_code == 429
        assert beacon.is_json and beacon.json["error"]["status"] == 429
        # Another address has its own budget.
        other = client.get("/l/x", environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert other.status_code == 404


def test_fresh_link_form_is_limited_per_form(settings, tmp_path, ledger):
    # A well-formed token with a signature of no secret of ours: refused, but counted as that form's.
    forged = CanonicalTimedSerializer("not-our-secret-0123456789", salt="fresh").dumps(["C1", "c1", "", 1])
    with make_app(settings, tmp_path, RATE_LIMIT_FRESH="2/3600") as app:
        client = app.test_client()
        codes = [client.post("/fresh", data={"token": forged}).status_code for _ in range(3)]
    assert codes == [404, 404, 429]


def test_respelled_tokens_are_refused_and_neither_use_nor_bypass_the_tokens_budget(settings, tmp_path, store,
                                                                                  ledger):
    """itsdangerous reads many spellings of one token as that token; each spelling was a new key for the
    per-token limit (40 of 40 respelled questions went through, each mailed to the collector)."""
    signer = Signer(settings)
    customer = sorted(ledger.customers)[0]
    contact = next(c.contact_id for c in ledger.contacts if c.customer_id == customer)
    page_token = signer.page_token("page", customer, 1)
    link = signer.link_token(customer, contact, "", 1)
    with make_app(settings, tmp_path, RATE_LIMIT_TOKEN="3/60") as app:
        client = app.test_client()
        spelled = (respellings(page_token) * 5)[:40]
        asked = [client.post("/question", data={"page_token": variant, "message": "Why?"}).status_code
                 for variant in spelled]
        assert asked == [404] * 40
        links = [client.get(f"/l/{quote(variant, safe='')}").status_code for variant in respellings(link)]
        assert set(links) == {404}
        # Every other route that reads a token: beacons, unsubscribing, documents, the payment page.
        others = [("post", "/r/", signer.page_token("view", customer, 1, "account")),
                  ("post", "/u/", signer.page_token("unsubscribe", customer, 1, contact)),
                  ("get", "/d/", signer.doc_token(customer, 1, "statement", "", "0" * 64 + ".pdf")),
                  ("get", "/pay/done?ref=", signer.pay_ref("pa_0123", 1))]
        for method, route, token in others:
            for variant in respellings(token):
                assert getattr(client, method)(f"{route}{quote(variant, safe='')}").status_code == 404, route
        # The genuine tokens still have their whole budget, and no more.
        assert [client.post("/question", data={"page_token": page_token, "message": "Why?"}).status_code
                for _ in range(4)] == [200, 200, 200, 429]
        assert [client.get(f"/l/{link}").status_code for _ in range(4)] == [303, 303, 303, 429]
        app.extensions["jobs"].wait()
    with store.begin() as conn:
        assert conn.execute(select(func.count()).select_from(questions)).scalar_one() == 3
    assert len(outbox_messages(tmp_path)) == 3
    assert store.count_events(kind="link_opened") == 3
    assert [e.kind for e in all_events(store) if e.kind != "question_asked"] == ["link_opened"] * 3


def test_memory_store_stays_bounded_and_windows_reset():
    clock = [1000.0]
    store = MemoryRateLimitStore(max_keys=100)
    limiter = RateLimiter(store, clock=lambda: clock[0])
    for n in range(1000):
        assert limiter.check((f"k{n}", Limit(1, 60))).allowed
    assert len(store) <= 100
    assert limiter.check(("x", Limit(1, 60))).allowed
    assert limiter.check(("x", Limit(1, 60))).retry_after == 60
    clock[0] += 61
    assert limiter.check(("x", Limit(1, 60))).allowed
    assert Limit.parse("30/60") == Limit(30, 60)
    with pytest.raises(ValueError):
        Limit.parse("0/60")


# --- the static site in development --------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/docs/k1/" + "a" * 64 + ".pdf", "/c/../docs/k1/" + "a" * 64 + ".pdf", "/c/k1/../../docs/k1/x.pdf",
    "/c/%2e%2e/docs/k1/" + "a" * 64 + ".pdf", "/.manifest.json", "/c/../.manifest.json",
    "/c/k1/.index.html.123.tmp", "/assets/../.manifest.json", "/c/k1/missing.html", "/",
])
def test_static_serving_reaches_pages_and_assets_only(client, path):
    response = client.get(path)
    assert response.status_code == 404, path
    assert b"private" not in response.data and b"partial" not in response.data


def test_static_serving_serves_pages_and_the_shared_stylesheet(client):
    page = client.get("/c/k1/index.html")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "private, no-cache"
    page.close()
    with client.get("/c/k1/") as index:
        assert index.status_code == 200
    css_name = client.application.extensions["portal"].assets.urls["portal.css"]
    css = client.get(f"/{css_name}")
    assert css.status_code == 200 and "immutable" in css.headers["Cache-Control"]


def test_without_a_site_folder_no_page_is_served(settings, tmp_path, ledger, site):
    from webhook import create_app

    app = create_app(settings, config=RELAXED)
    try:
        assert app.test_client().get("/c/k1/index.html").status_code == 404
    finally:
        app.extensions["portal"].store.close()


# --- logs ----------------------------------------------------------------------------------------------


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("webhook")
    level = logger.level
    logger.setLevel(logging.DEBUG)  # receipts log at debug level
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_logs_are_json_and_never_hold_a_token_or_an_address(client, ledger, settings, log_lines):
    from tests.webhook_helpers import hidden_field, old_link_token

    signer = Signer(settings)
    contact = ledger.contacts[0]
    good = signer.link_token(contact.customer_id, contact.contact_id, "", 1)
    expired = old_link_token(settings, contact.customer_id, contact.contact_id, "", 1, settings.link_ttl_days + 1)
    client.get(f"/l/{good}")
    client.get(f"/l/{good[:-3]}")
    form = hidden_field(client.get(f"/l/{expired}").get_data(as_text=True), "token")
    client.post("/fresh", data={"token": form})
    lines = log_lines()
    text = json.dumps(lines)
    assert {"link_opened", "token_rejected", "link_expired", "fresh_link_sent"} <= {line["event"] for line in lines}
    for secret in (good, good[:-3], expired, form, contact.email):
        assert secret not in text
    assert token_ref(good) in text


def test_werkzeug_request_log_is_redacted():
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '%s - - "%s" %s', (
        "127.0.0.1", "GET /l/WyJDMDAwMDEiXQ.abc.def-ghi HTTP/1.1", "303"), None)
    RedactFilter().filter(record)
    assert "WyJDMDAwMDEiXQ" not in record.getMessage() and "/l/~" in record.getMessage()
    assert redact("mail bob@example.com now") == "mail <email> now"


def test_portal_serve_access_log_holds_no_capability(tmp_path):
    """`portal serve` (werkzeug's request log) printed page keys, unsubscribe tokens, payment references and
    every query string in full; each must show as a reference, never as itself."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PORTAL_SECRET_KEY": "serve-log-secret-0123456789",
           "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}", "PORTAL_SITE_URL": f"http://127.0.0.1:{port}"}

    def portal(*args: str, **popen: Any) -> Any:
        command = [sys.executable, "-m", "portal", *args]
        if popen:
            return subprocess.Popen(command, cwd=tmp_path, env=env, **popen)
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    portal("sample-data", "export", "--customers", "2", "--invoices", "3")
    portal("build", "export", "--out", "build")
    links = list(csv.DictReader(io.StringIO(portal("links"))))
    settings = load_settings(env={}, config_file=None, secret_key=env["PORTAL_SECRET_KEY"])
    signer = Signer(settings)
    customer, contact = links[0]["customer_id"], links[0]["contact_id"]
    key = signer.customer_key(customer, 1)
    secrets = {
        "page key": key,
        "link token": links[0]["url"].rsplit("/l/", 1)[1],
        "unsubscribe token": signer.page_token("unsubscribe", customer, 1, contact),
        "payment reference": signer.pay_ref("pa_0123456789abcdef", 1),
        "query value": "a-secret-query-value",
    }
    paths = [f"/c/{key}/index.html", f"/c/{key}/index.html?campaign={secrets['query value']}",
             f"/l/{secrets['link token']}", f"/u/{secrets['unsubscribe token']}",
             f"/pay/done?ref={secrets['payment reference']}&session_id=cs_1",
             f"/pay/cancelled?ref={secrets['payment reference']}"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = portal("serve", "--port", str(port), stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for(f"http://127.0.0.1:{port}/healthz", server)
            statuses = [requests.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False, timeout=10).status_code
                        for path in paths]
        finally:
            server.terminate()
            server.wait(timeout=20)
    text = log.read_text()
    assert statuses[:4] == [200, 200, 303, 200], statuses
    requests_logged = [line for line in text.splitlines() if 'GET /' in line]
    assert len(requests_logged) >= len(paths), text
    for what, secret in secrets.items():
        assert secret not in text, what
    assert f"/c/~{token_ref(key)}/index.html" in text and f"/u/~{token_ref(secrets['unsubscribe token'])}" in text
    assert "/pay/done?~" in text


def _wait_for(url: str, process: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"portal serve exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("portal serve did not answer")


def test_redact_hides_every_capability_and_query_string():
    key, token = "abcdefghijklmnopqrstuvwxyz", "WyJDMSIsMSwiIl0.c2lnbmF0dXJl"
    line = (f'127.0.0.1 - - "GET /c/{key}/i/INV-1.html?utm=x HTTP/1.1" 200 - "POST /u/{token} HTTP/1.1" 200 '
            f'"GET /pay/done?ref={token}&session_id=cs_1 HTTP/1.1" "GET /staff/login?next=/staff/x HTTP/1.1"')
    text = redact(line)
    for secret in (key, token, "utm=x", "cs_1", "next=/staff/x"):
        assert secret not in text, secret
    assert f"/c/~{token_ref(key)}/i/INV-1.html?~" in text and f"/u/~{token_ref(token)} " in text
    assert "/pay/done?~" in text and "/staff/login?~" in text
    assert redact("Why? Because.") == "Why? Because."  # prose keeps its question marks


# --- the one error handler -----------------------------------------------------------------------------


def test_unexpected_errors_become_a_plain_500_without_details(settings, tmp_path, ledger):
    with make_app(settings, tmp_path) as app:
        @app.get("/boom")
        def boom():
            raise RuntimeError("secret internals /l/sometoken")

        client = app.test_client()
        page = client.get("/boom")
        assert page.status_code == 500 and b"Something went wrong" in page.data and b"internals" not in page.data
        _check_headers(page)
        data = client.get("/boom", headers={"Accept": "application/json"})
        assert data.status_code == 500 and data.json["error"]["status"] == 500


def test_database_trouble_answers_503(settings, tmp_path, ledger):
    broken = settings.replace(database_url=f"sqlite:///{tmp_path / 'empty.db'}")  # no schema
    with make_app(broken, tmp_path) as app:
        response = app.test_client().get(f"/l/{Signer(settings).link_token(sorted(ledger.customers)[0], 'c', '', 1)}")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"


def test_large_bodies_are_refused(client, store):
    response = client.post("/fresh", data={"token": "x" * 100_000})
    assert response.status_code == 413
    assert all_events(store) == []
