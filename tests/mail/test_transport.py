"""portal/mail/transport.py: each transport delivers a message and returns its id; messages escape what they show."""

from __future__ import annotations

import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from portal.core.config import load_settings
from portal.core.errors import ConfigError
from portal.mail.messages import fresh_link_message
from portal.mail.transport import MailError, OutboxTransport, SesTransport, SmtpTransport, transport_from_url
from tests.ports import free_port


@pytest.fixture
def settings(tmp_path):
    return load_settings(env={}, config_file=None, secret_key="test-secret-key-0123456789abcdef",
                         company_name="Müller & Söhne", mail_url=f"outbox:{tmp_path / 'outbox'}")


def _message(settings) -> EmailMessage:
    return fresh_link_message(settings, ("Ann <script>\nBcc: x@evil.example", "ann@customer.example"),
                              "Acme <b>&</b> Co", "http://127.0.0.1:8000/l/abc", "INV-1")


def test_transport_from_url():
    assert isinstance(transport_from_url("outbox:some/dir"), OutboxTransport)
    smtp = transport_from_url("smtp://us%40er:p%3Ass@mail.example:2525")
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.host, smtp.port, smtp.username, smtp.password, smtp.implicit_tls) == (
        "mail.example", 2525, "us@er", "p:ss", False)
    assert transport_from_url("smtps://mail.example").port == 465
    with pytest.raises(ConfigError):
        transport_from_url("smtp://")
    with pytest.raises(ConfigError):
        transport_from_url("ses://")


def test_outbox_writes_one_eml_per_message_and_returns_its_id(settings, tmp_path):
    message_id = OutboxTransport(tmp_path / "outbox").send(_message(settings))
    [path] = (tmp_path / "outbox").glob("*.eml")
    stored = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert stored["Message-ID"] == message_id and stored["Date"]
    assert not list((tmp_path / "outbox").glob(".*"))  # no temp file left behind


def test_message_escapes_html_and_keeps_headers_intact(settings):
    message = _message(settings)
    assert message["Bcc"] is None  # a newline in a name cannot add a header
    [to] = message["To"].addresses
    assert to.addr_spec == "ann@customer.example"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<b>" not in html and "&lt;b&gt;" in html and "<script>" not in html
    assert "Acme <b>&</b> Co" in text and "Müller & Söhne" in text  # plain text is not HTML-escaped
    assert "http://127.0.0.1:8000/l/abc" in text and 'href="http://127.0.0.1:8000/l/abc"' in html
    assert "INV-1" in message["Subject"]


def test_smtp_logs_in_and_delivers(settings):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received, logins = [], []
    done = threading.Event()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.rcpt_tos, envelope.content))
            done.set()
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"p:ss")

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        message_id = SmtpTransport("127.0.0.1", port, "us@er", "p:ss").send(_message(settings))
        assert done.wait(5)
    finally:
        controller.stop()
    [(recipients, content)] = received
    assert recipients == ["ann@customer.example"]
    assert logins[0] == (b"us@er", b"p:ss")
    assert message_from_bytes(content, policy=policy.default)["Message-ID"] == message_id


def test_smtp_failure_is_a_mail_error(settings):
    with pytest.raises(MailError, match="SMTP 127.0.0.1"):
        SmtpTransport("127.0.0.1", free_port()).send(_message(settings))


def test_ses_sends_the_raw_message(settings, monkeypatch):
    """SES through boto3 against moto's in-process mock (fine here: nothing security-relevant is checked)."""
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        transport = SesTransport("eu-west-1")
        transport.client.verify_email_identity(EmailAddress=settings.support_email)
        message_id = transport.send(_message(settings))
        assert message_id.endswith("@eu-west-1.amazonses.com>")
        quota = transport.client.get_send_quota()
        assert quota["SentLast24Hours"] == 1
