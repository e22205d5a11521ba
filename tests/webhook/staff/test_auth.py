"""/staff authentication: who gets in, who does not, and what a session and its CSRF token protect.

Runs on SQLite and PostgreSQL (the `store` fixture): sessions and failed logins live in the database.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from portal.cli.main import cli
from portal.core.signing import Signer
from portal.disputes.service import submit_dispute
from portal.staff import users as staffusers
from portal.staff.users import (
    MAX_FAILURES_PER_EMAIL,
    MAX_FAILURES_PER_EMAIL_ANYWHERE,
    SESSION_IDLE,
    LoginThrottled,
    StaffError,
    add_user,
    authenticate,
    load_session,
    start_session,
    update_user,
)
from portal.store import disputes as disputestore
from portal.store.staff import staff_users
from tests.staff_helpers import PASSWORD, add_staff, csrf, login
from tests.webhook_helpers import hidden_field, import_sample, make_app, outbox_messages

ADMIN, VIEWER = "admin@example.com", "viewer@example.com"


@pytest.fixture
def ledger(store, settings, export_dir):
    return import_sample(store, settings, export_dir)


@pytest.fixture
def app(settings, tmp_path, ledger, store):
    add_staff(store, ADMIN, "admin")
    add_staff(store, VIEWER, "viewer")
    with make_app(settings.replace(target=str(tmp_path / "site")), tmp_path) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


def _staff_rules(app):
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/staff")
            and r.endpoint not in {"staff.login", "staff.login_post", "staff.asset"}]


def _path(rule) -> str:
    return re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)


def _dispute(store, settings, ledger):
    invoice = next(i for i in ledger.invoices.values() if i.balance > 0)
    return submit_dispute(store, settings, invoice.customer_id, [invoice.invoice_id], {}, "pricing",
                          "The unit price is wrong").reference.removeprefix("D-")


def _status(store, dispute_id):
    dispute_id = int(dispute_id)
    with store.begin() as conn:
        return disputestore.get_dispute(conn, dispute_id).status


# --- the command line ----------------------------------------------------------------------------------------


def test_staff_add_hashes_with_argon2id_and_refuses_weak_passwords_and_duplicates(settings, store, tmp_path):
    env = {"PORTAL_DATABASE_URL": settings.database_url, "PORTAL_SECRET_KEY": settings.secret_key}
    runner = CliRunner()
    ok = runner.invoke(cli, ["staff", "add", "Ann@Example.com", "--role", "admin", "--password-stdin"],
                       input=PASSWORD + "\n", env=env, obj={})
    assert ok.exit_code == 0, ok.output
    assert "added ann@example.com (admin)" in ok.output
    with store.begin() as conn:
        row = conn.execute(select(staff_users)).one()
    assert row.email == "ann@example.com" and row.role == "admin"
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    weak = runner.invoke(cli, ["staff", "add", "bob@example.com", "--password-stdin"], input="short\n", env=env, obj={})
    assert weak.exit_code == 1 and "at least 12 characters" in weak.output
    again = runner.invoke(cli, ["staff", "add", "ann@example.com", "--password-stdin"], input=PASSWORD + "\n",
                          env=env, obj={})
    assert again.exit_code == 1 and "already a staff user" in again.output
    last = runner.invoke(cli, ["staff", "set", "ann@example.com", "--role", "viewer"], env=env, obj={})
    assert last.exit_code == 1 and "last active admin" in last.output


# --- who is refused ------------------------------------------------------------------------------------------


def test_every_staff_route_refuses_an_anonymous_request(app, client):
    rules = _staff_rules(app)
    assert len(rules) >= 15, [r.rule for r in rules]
    for rule in rules:
        path = _path(rule)
        if "GET" in rule.methods:
            response = client.get(path)
            assert response.status_code == 302, path
            assert response.headers["Location"].startswith("/staff/login"), path
        if "POST" in rule.methods:
            assert client.post(path, data={"csrf_token": "x"}).status_code == 403, path


def test_a_customer_token_opens_no_staff_route(app, client, settings, ledger):
    customer_id = next(iter(ledger.customers))
    signer = Signer(settings)
    tokens = [signer.page_token("page", customer_id, 1), signer.link_token(customer_id, "c", "", 1)]
    for rule in _staff_rules(app):
        if "GET" not in rule.methods:
            continue
        for token in tokens:
            for response in (
                client.get(_path(rule), query_string={"token": token, "page_token": token}),
                client.get(_path(rule), headers={"Authorization": f"Bearer {token}",
                                                 "Cookie": f"staff_session={token}"}),
            ):
                assert response.status_code == 302, rule.rule
                assert response.headers["Location"].startswith("/staff/login")


def test_a_viewer_cannot_resolve_review_or_manage_staff_but_an_admin_can_resolve(client, store, settings, ledger,
                                                                                 tmp_path):
    dispute_id = _dispute(store, settings, ledger)
    assert login(client, VIEWER).status_code == 302
    token = csrf(client)
    for path in (f"/staff/disputes/{dispute_id}/resolve", f"/staff/disputes/{dispute_id}/review"):
        refused = client.post(path, data={"csrf_token": token, "outcome": "rejected", "note": "no"})
        assert refused.status_code == 403, path
    assert client.get("/staff/users").status_code == 403
    assert client.post("/staff/users", data={"csrf_token": token, "email": "x@example.com", "password": PASSWORD,
                                              "role": "admin"}).status_code == 403
    assert _status(store, dispute_id) == "open"
    assert f"Resolve D-{dispute_id}" not in client.get("/staff/disputes").get_data(as_text=True)

    admin = client.application.test_client()
    assert login(admin, ADMIN).status_code == 302
    assert f"Resolve D-{dispute_id}" in admin.get("/staff/disputes").get_data(as_text=True)  # what viewers lack
    done = admin.post(f"/staff/disputes/{dispute_id}/resolve",
                      data={"csrf_token": csrf(admin), "outcome": "credit_issued", "note": "Credit note CN-9 issued"})
    assert done.status_code == 302
    assert _status(store, dispute_id) == "resolved"
    client.application.extensions["jobs"].wait()  # the email is a job, queued with the resolution
    assert any("CN-9" in m.get_body(("plain",)).get_content() for m in outbox_messages(tmp_path))


def test_posts_without_the_sessions_csrf_token_or_from_another_origin_are_refused(client, store, settings, ledger):
    dispute_id = _dispute(store, settings, ledger)
    login(client, ADMIN)
    token = csrf(client)
    path = f"/staff/disputes/{dispute_id}/review"
    assert client.post(path).status_code == 403
    assert client.post(path, data={"csrf_token": token[:-2] + "xx"}).status_code == 403
    assert client.post(path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"}).status_code == 403
    assert _status(store, dispute_id) == "open"
    # The configured public address is ours even when the Host header is not (behind CloudFront).
    assert client.post(path, data={"csrf_token": token}, headers={"Origin": settings.effective_webhook_url}
                       ).status_code == 302
    assert _status(store, dispute_id) == "under_review"


def test_the_login_form_itself_needs_its_nonce(client):
    form = client.get("/staff/login").get_data(as_text=True)
    assert 'name="csrf_token"' in form
    fresh = client.application.test_client()  # no nonce cookie
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    refused = fresh.post("/staff/login", data={"email": ADMIN, "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 403
    assert client.post("/staff/login", data={"email": ADMIN, "password": PASSWORD}).status_code == 403


# --- sessions ------------------------------------------------------------------------------------------------


def test_login_sets_an_httponly_samesite_cookie_and_https_uses_a_host_prefixed_secure_one(app, client):
    response = login(client, VIEWER)
    assert response.status_code == 302 and response.headers["Location"] == "/staff/"
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("staff_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert client.get("/staff/").status_code == 200

    secure = app.test_client()
    form = secure.get("/staff/login", base_url="https://portal.example")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True)).group(1)
    done = secure.post("/staff/login", base_url="https://portal.example",
                       data={"email": VIEWER, "password": PASSWORD, "csrf_token": token})
    cookie = next(v for k, v in done.headers.items() if k == "Set-Cookie" and "staff_session=" in v)
    assert cookie.startswith("__Host-staff_session=") and "Secure" in cookie and "HttpOnly" in cookie


def test_wrong_passwords_and_unknown_users_get_the_same_answer(client):
    wrong = login(client, VIEWER, "not the password at all")
    unknown = login(client, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "The email or the password is wrong." in wrong.get_data(as_text=True)
    assert "The email or the password is wrong." in unknown.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_failed_logins_are_throttled_per_email_even_with_the_right_password(client):
    for _ in range(MAX_FAILURES_PER_EMAIL):
        assert login(client, VIEWER, "wrong password here").status_code == 401
    throttled = login(client, VIEWER, PASSWORD)
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 15 * 60
    assert client.get("/staff/").status_code == 302
    # The same account from another address is not locked out: five wrong guesses by a stranger who knows
    # an email must not keep its owner out.
    assert login(client.application.test_client(), VIEWER, environ_base={"REMOTE_ADDR": "10.0.0.9"}
                 ).status_code == 302


def test_concurrent_wrong_passwords_get_at_most_the_limit_checked(app, monkeypatch):
    """The attempt is reserved before the password is checked, in one statement: fifteen guesses at once (here
    on threads through the app, on SQLite and PostgreSQL) get at most five checks, not fifteen."""
    checked = []
    verify = staffusers._verify
    monkeypatch.setattr(staffusers, "_verify", lambda *args: checked.append(1) or verify(*args))
    clients = [app.test_client() for _ in range(15)]
    forms = [hidden_field(c.get("/staff/login").get_data(as_text=True), "csrf_token") for c in clients]
    start = threading.Barrier(len(clients))

    def guess(n: int) -> int:
        start.wait()
        return clients[n].post("/staff/login", data={"email": VIEWER, "password": f"wrong guess number {n}",
                                                     "csrf_token": forms[n]}).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        codes = sorted(pool.map(guess, range(len(clients))))
    assert len(checked) <= MAX_FAILURES_PER_EMAIL
    assert codes == [401] * len(checked) + [429] * (len(clients) - len(checked))
    assert len(checked) >= 1
    # The owner, from elsewhere, still gets in; and here once the window has passed (tested below).
    assert login(app.test_client(), VIEWER, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 302


def test_throttling_counts_per_address_across_emails_and_ends_with_the_window(store):
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    add_user(store, "a@example.com", PASSWORD, now=now)
    for i in range(20):
        assert authenticate(store, f"guess{i}@example.com", "x" * 12, "198.51.100.7", now=now) is None
    with pytest.raises(LoginThrottled) as caught:
        authenticate(store, "a@example.com", PASSWORD, "198.51.100.7", now=now)
    assert caught.value.retry_after > 0
    assert authenticate(store, "a@example.com", PASSWORD, "198.51.100.8", now=now) is not None
    later = now + timedelta(minutes=16)
    assert authenticate(store, "a@example.com", PASSWORD, "198.51.100.7", now=later) is not None
    # A guesser spread over many addresses still meets a limit on the account itself.
    for i in range(MAX_FAILURES_PER_EMAIL_ANYWHERE):
        ip = f"10.1.{i // 250}.{i % 250}"
        assert authenticate(store, "a@example.com", "wrong" * 3, ip, now=later) is None
    with pytest.raises(LoginThrottled):
        authenticate(store, "a@example.com", PASSWORD, "192.0.2.1", now=later)


def test_logout_ends_the_session_on_the_server(client):
    login(client, VIEWER)
    cookie = client.get_cookie("staff_session").value
    assert client.post("/staff/logout", data={"csrf_token": csrf(client)}).status_code == 302
    other = client.application.test_client()
    other.set_cookie("staff_session", cookie)  # the old cookie, replayed
    assert other.get("/staff/").status_code == 302


def test_disabling_or_demoting_a_user_ends_its_sessions_at_once(client, store):
    login(client, ADMIN)
    add_staff(store, "second-admin@example.com", "admin")
    assert client.get("/staff/users").status_code == 200
    update_user(store, ADMIN, role="viewer")
    assert client.get("/staff/users").status_code == 302  # logged out, not merely demoted
    login(client, ADMIN)
    assert client.get("/staff/users").status_code == 403
    update_user(store, ADMIN, active=False)
    assert client.get("/staff/").status_code == 302
    assert login(client, ADMIN).status_code == 401


def test_sessions_expire_when_idle(store):
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    user = add_user(store, "c@example.com", PASSWORD)
    session_id = start_session(store, user, now=now)
    assert load_session(store, session_id, now=now + SESSION_IDLE / 2) is not None
    assert load_session(store, session_id, now=now + SESSION_IDLE / 2 + SESSION_IDLE) is None
    assert load_session(store, session_id, now=now) is None  # deleted, not merely refused once


def test_a_staff_user_needs_a_real_email_address(store):
    for bad in ("not an email", "a@b", "x@example.com\nBcc: y@example.com", "<a@example.com>"):
        with pytest.raises(StaffError):
            add_user(store, bad, PASSWORD)
    assert add_user(store, " Mixed@Example.COM ", PASSWORD).email == "mixed@example.com"


def test_a_control_character_in_next_is_refused_not_a_500(client):
    for target in ("/staff/\r\nSet-Cookie: a=b", "/staff/receipts\nX: y", "/staff/\x00", "/staff/\tx",
                   "/staff/\x7f", "/staff/\x85"):
        form = client.get("/staff/login", query_string={"next": target}).get_data(as_text=True)
        assert 'name="next" value="/staff/"' in form, repr(target)
        done = client.post("/staff/login", data={"email": VIEWER, "password": PASSWORD, "next": target,
                                                 "csrf_token": hidden_field(form, "csrf_token")})
        assert done.status_code == 302 and done.headers["Location"] == "/staff/", repr(target)
        assert "a=b" not in done.headers.get("Set-Cookie", "")
        client.post("/staff/logout", data={"csrf_token": csrf(client)})


def test_login_redirects_only_inside_staff(client):
    form = client.get("/staff/login?next=//evil.example/x").get_data(as_text=True)
    assert 'name="next" value="/staff/"' in form
    # A hostile `next` posted straight to the form (not the one we rendered) is dropped too.
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    for target in ("//evil.example/x", "https://evil.example/", "/staff/\\evil.example", "/elsewhere"):
        done = client.post("/staff/login", data={"email": VIEWER, "password": PASSWORD, "csrf_token": token,
                                                 "next": target})
        assert done.status_code == 302 and done.headers["Location"] == "/staff/", target
        client.post("/staff/logout", data={"csrf_token": csrf(client)})
        token = re.search(r'name="csrf_token" value="([^"]+)"',
                          client.get("/staff/login").get_data(as_text=True)).group(1)
    form = client.get("/staff/login?next=/staff/receipts%3Funopened%3D7").get_data(as_text=True)
    assert 'name="next" value="/staff/receipts?unopened=7"' in form
