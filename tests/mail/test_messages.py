"""The messages the portal sends (portal/mail/messages.py): every header made from data is one line."""

from __future__ import annotations


def test_every_header_made_from_data_is_one_line():
    from email import message_from_bytes, policy

    from portal.core.config import load_settings
    from portal.mail.messages import render_message

    settings = load_settings(env={}, config_file=None, secret_key="h" * 32,
                             company_name="ACME\r\nBcc: company@evil.example")
    message = render_message(settings, "fresh_link", ("Ann\nCc: name@evil.example\x00", "ann@example.com"),
                             "Invoice INV\r\n7\x1b[31m\nX-Evil: yes", customer_name="C", url="https://x.example/l/t",
                             invoice_number="INV 7", contact_name="Ann", ttl_days=60)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Invoice INV 7 [31m X-Evil: yes"
    assert parsed["From"].addresses[0].display_name == "ACME Bcc: company@evil.example"
    assert parsed["To"].addresses[0].display_name == "Ann Cc: name@evil.example"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.com"]
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["X-Evil"] is None
