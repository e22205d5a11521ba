"""The demo's own parts (webhook/demo): the test checkout and the mail viewer exist only in `portal demo`'s app.

`create_app` never serves them, whatever the settings, the environment or the app config say; the demo's app
refuses settings that could reach a real Stripe account; the mail viewer escapes whatever a message holds; the
"TEST MODE" banner is on the pages the demo serves. tests/browser/test_demo.py drives the demo itself.
"""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage

import pytest

from portal.core.config import Settings, load_settings
from portal.mail.transport import OutboxTransport
from tests.webhook_helpers import RELAXED, make_app
from webhook import create_app
from webhook.demo import create_demo_app

# Every route of the demo's parts, with what the demo's app answers to a request carrying nothing.
DEMO_ROUTES = [("POST", "/demo/stripe/v1/checkout/sessions", 401), ("GET", "/demo/checkout/", 200),
               ("GET", "/demo/checkout/cs_test_unknown", 404), ("GET", "/demo/outbox/", 200),
               ("GET", "/demo/banner.css", 200)]


def demo_like(settings: Settings, tmp_path) -> Settings:
    """Settings as `portal demo` makes them (portal/cli/demo.py demo_settings)."""
    return settings.replace(stripe_secret_key="sk_test_demo_0123", stripe_webhook_secret="whsec_demo_0123",
                            stripe_api_base=f"{settings.effective_webhook_url}/demo/stripe",
                            mail_url=f"outbox:{tmp_path / 'outbox'}")


@pytest.fixture
def demo_app(settings, store, tmp_path):
    app = create_demo_app(demo_like(settings, tmp_path), site_dir=tmp_path / "site",
                          config={**RELAXED, "TESTING": True})
    yield app
    app.extensions["jobs"].shutdown()
    app.extensions["portal"].store.close()


def _answers(app) -> list[int]:
    client = app.test_client()
    return [client.open(path, method=method).status_code for method, path, _ in DEMO_ROUTES]


def test_the_demo_app_serves_its_routes(demo_app):
    assert _answers(demo_app) == [status for _, _, status in DEMO_ROUTES]


def test_the_test_checkout_is_unreachable_outside_the_demo(settings, store, tmp_path, monkeypatch):
    # Everything a deployment could set: the demo's own Stripe address and keys, and any name a switch might have.
    for name in ("PORTAL_DEMO", "PORTAL_DEMO_CHECKOUT", "PORTAL_TEST_CHECKOUT", "WEBHOOK_DEMO", "WEBHOOK_DEMO_CHECKOUT",
                 "WEBHOOK_TEST_CHECKOUT"):
        monkeypatch.setenv(name, "1")
    config = {"DEMO": True, "DEMO_CHECKOUT": True, "TEST_CHECKOUT": True}
    with make_app(demo_like(settings, tmp_path), tmp_path, **config) as app:
        assert _answers(app) == [404] * len(DEMO_ROUTES)
        assert not [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/demo")]
        assert "demo_checkout" not in app.extensions
    monkeypatch.setenv("PORTAL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_demo_0123")
    monkeypatch.setenv("PORTAL_STRIPE_API_BASE", f"{settings.effective_webhook_url}/demo/stripe")
    from_environment = create_app(load_settings(), site_dir=tmp_path / "site")  # as gunicorn's create_app()
    try:
        assert _answers(from_environment) == [404] * len(DEMO_ROUTES)
    finally:
        from_environment.extensions["jobs"].shutdown()
        from_environment.extensions["portal"].store.close()
    # No setting could be the switch: none names the demo.
    assert not [f.name for f in dataclasses.fields(Settings) if "demo" in f.name or "checkout" in f.name]


@pytest.mark.parametrize("change", [{"stripe_api_base": "https://api.stripe.com"}, {"stripe_api_base": ""},
                                    {"stripe_secret_key": "sk_live_0123"}])
def test_the_demo_app_refuses_settings_that_could_reach_stripe(settings, tmp_path, change):
    with pytest.raises(ValueError, match="test checkout"):
        create_demo_app(demo_like(settings, tmp_path).replace(**change), site_dir=tmp_path / "site")


def test_the_test_checkout_takes_only_the_demo_key(demo_app):
    client = demo_app.test_client()
    form = {"mode": "payment", "client_reference_id": "pa_1", "allowed_payment_method_types[0]": "card",
            "line_items[0][quantity]": "1", "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "1250",
            "line_items[0][price_data][product_data][name]": "Invoice <b>INV-1</b>",
            "success_url": "http://127.0.0.1:8000/pay/done?ref=r", "cancel_url": "http://127.0.0.1:8000/pay/cancelled"}
    path = "/demo/stripe/v1/checkout/sessions"
    assert client.post(path, data=form, headers={"Authorization": "Bearer sk_test_other"}).status_code == 401
    answer = client.post(path, data=form, headers={"Authorization": "Bearer sk_test_demo_0123",
                                                   "Idempotency-Key": "checkout-pa_1"})
    assert answer.status_code == 200
    session = answer.get_json()
    assert session["amount_total"] == 1250 and session["client_reference_id"] == "pa_1"
    assert session["url"].startswith("http://localhost/demo/checkout/cs_test_")
    again = client.post(path, data=form, headers={"Authorization": "Bearer sk_test_demo_0123",
                                                  "Idempotency-Key": "checkout-pa_1"})
    assert again.get_json()["id"] == session["id"]  # the same key: the same session, as Stripe answers
    page = client.get(session["url"].removeprefix("http://localhost")).get_data(as_text=True)
    assert "TEST MODE: no money moves." in page and "$12.50" in page
    assert "Invoice &lt;b&gt;INV-1&lt;/b&gt;" in page and "<b>INV-1" not in page


def test_the_mail_viewer_escapes_what_a_message_holds(demo_app, tmp_path):
    message = EmailMessage()
    message["From"], message["To"] = "ar@example.com", "ap@example.com"
    message["Subject"] = "Invoice <script>alert(1)</script>"
    message.set_content("Plain <b>text</b>")
    message.add_alternative('<p>Hello</p><img src=x onerror="alert(2)">', subtype="html")
    OutboxTransport(tmp_path / "outbox").send(message)
    client = demo_app.test_client()
    listing = client.get("/demo/outbox/").get_data(as_text=True)
    assert "Invoice &lt;script&gt;alert(1)&lt;/script&gt;" in listing and "<script>alert(1)" not in listing
    name = next((tmp_path / "outbox").glob("*.eml")).name
    shown = client.get(f"/demo/outbox/{name}")
    html = shown.get_data(as_text=True)
    assert '<iframe title="The email as its recipient sees it" sandbox srcdoc="&lt;p&gt;Hello&lt;/p&gt;&lt;img ' \
           'src=x onerror=&#34;alert(2)&#34;&gt;' in html
    assert "onerror=\"alert" not in html and "Plain &lt;b&gt;text&lt;/b&gt;" in html
    assert "script-src" not in shown.headers["Content-Security-Policy"]  # no script may run on this page
    assert client.get("/demo/outbox/..%2Fportal.db").status_code == 404
    assert client.get("/demo/outbox/1-0123456789.eml").status_code == 404


def test_the_banner_is_on_every_page_the_demo_serves(demo_app, tmp_path):
    page = tmp_path / "site" / "c" / "k" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<!doctype html><html><head><title>t</title></head><body class=x><p>owed</p></body></html>")
    client = demo_app.test_client()
    for path in ("/c/k/index.html", "/demo/checkout/", "/demo/outbox/", "/staff/login"):
        body = client.get(path).get_data(as_text=True)
        assert '<div class="demo-banner" role="note" id="demo-banner"><strong>TEST MODE: no money moves.' in body, path
    assert client.get("/c/k/index.html").get_data(as_text=True).count("TEST MODE") == 1
