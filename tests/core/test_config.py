"""Settings: defaults < portal.toml < PORTAL_* environment, validated once, secrets from the environment only."""

from __future__ import annotations

import logging

import pytest

from portal.core.config import DEV_SECRET_KEY, load_settings, warn_if_insecure
from portal.core.errors import ConfigError


def test_defaults_run_locally(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.database_url == "sqlite:///portal.db" and settings.target == "build"
    assert settings.effective_webhook_url == "http://127.0.0.1:8000" and settings.mail_url == "outbox:outbox"
    assert settings.secret_key == DEV_SECRET_KEY and not settings.payments_enabled


def test_file_then_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "portal.toml").write_text('site_url = "https://pay.example.com"\nlink_ttl_days = 30\n'
                                          'aging_buckets = [15, 45]\nrender_pdfs = false\n')
    settings = load_settings(env={"PORTAL_LINK_TTL_DAYS": "10", "PORTAL_SECRET_KEY": "k" * 20,
                                  "STRIPE_SECRET_KEY": "sk_test_1"})
    assert settings.site_url == "https://pay.example.com" and settings.link_ttl_days == 10
    assert settings.aging_buckets == (15, 45) and settings.render_pdfs is False
    assert settings.secret_key == "k" * 20 and settings.payments_enabled


@pytest.mark.parametrize(("toml", "env", "message"), [
    ('secret_key = "abcdefghijklmnopqrstu"', {}, "secrets are read from the environment only"),
    ('colour = "blue"', {}, "colour: unknown setting"),
    ("", {"PORTAL_LINK_TTL_DAYS": "soon"}, "PORTAL_LINK_TTL_DAYS: link_ttl_days: 'soon'"),
    ("", {"PORTAL_SITE_URL": "ftp://x"}, "site_url: 'ftp://x' is not an http(s) URL"),
    ("", {"PORTAL_DEFAULT_CURRENCY": "XYZ"}, "default_currency: 'XYZ' is not an ISO 4217 currency"),
    ("", {"PORTAL_MAIL_URL": "carrier-pigeon:x"}, "mail_url"),
    ("", {"PORTAL_SECRET_KEY": "short"}, "at least 16 characters"),
    ("link_ttl_days = ", {}, "portal.toml"),
])
def test_bad_settings_name_the_key(tmp_path, monkeypatch, toml, env, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "portal.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env=env)


def test_missing_explicit_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.toml", env={})


def test_development_secret_warns_loudly(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        warn_if_insecure(load_settings(env={}))
    assert "DEVELOPMENT secret" in caplog.text
    caplog.clear()
    warn_if_insecure(load_settings(env={"PORTAL_SECRET_KEY": "k" * 20}))
    assert caplog.text == ""


def test_pdf_files_in_settings_are_checked_at_start(tmp_path):
    """A logo that is not a PNG or JPEG, or a font folder that is not there, stops the program with the key named,
    before a build or a download would trip over it."""
    text = tmp_path / "logo.png"
    text.write_text("not an image")
    with pytest.raises(ConfigError, match="company_logo: .* is not a PNG or JPEG file"):
        load_settings(env={}, config_file=None, company_logo=str(text))
    with pytest.raises(ConfigError, match="company_logo: .* cannot be read"):
        load_settings(env={}, config_file=None, company_logo=str(tmp_path / "missing.png"))
    with pytest.raises(ConfigError, match="font_dir: .* is not a folder"):
        load_settings(env={}, config_file=None, font_dir=str(tmp_path / "fonts"))
    png = tmp_path / "real.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    assert load_settings(env={}, config_file=None, company_logo=str(png)).company_logo == str(png)
