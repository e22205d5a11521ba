"""Customer keys and tokens: one salt per purpose, expiry, key versions, rotation."""

from __future__ import annotations

import re
import time

import pytest
from itsdangerous import URLSafeSerializer

from portal.config import load_settings
from portal.signing import CUSTOMER_KEY_LENGTH, PageClaims, Signer, TokenExpired, TokenInvalid, customer_key

SETTINGS = load_settings(env={}, config_file=None, secret_key="s" * 32, link_ttl_days=2)


def test_customer_keys_are_long_unguessable_and_versioned():
    key = customer_key("secret-one-123456", "C1", 1)
    assert len(key) == CUSTOMER_KEY_LENGTH == 26 and re.fullmatch(r"[a-z2-7]{26}", key)
    assert key == customer_key("secret-one-123456", "C1", 1)
    assert len({key, customer_key("secret-one-123456", "C1", 2), customer_key("secret-one-123456", "C2", 1),
                customer_key("secret-two-123456", "C1", 1)}) == 4
    # The version is an integer after the last ":", so an id containing ":" cannot collide with another key.
    assert customer_key("k" * 16, "C1:1", 1) != customer_key("k" * 16, "C1", 11)


def test_link_round_trip_and_tampering():
    signer = Signer(SETTINGS)
    token = signer.link_token("C1", "ap@acme.example", "I1", 3)
    claims = signer.read_link(token)
    assert (claims.customer_id, claims.contact_id, claims.invoice_id, claims.key_version) == (
        "C1", "ap@acme.example", "I1", 3)
    body, stamp, signature = token.split(".")
    tampered = ".".join([body, stamp, ("A" if signature[0] != "A" else "B") + signature[1:]])
    with pytest.raises(TokenInvalid):
        signer.read_link(tampered)
    with pytest.raises(TokenInvalid):
        Signer(SETTINGS.replace(secret_key="another-secret-1234")).read_link(token)


def test_expired_link_still_says_who_it_was_for(monkeypatch):
    signer = Signer(SETTINGS)
    past = time.time() - 3 * 86400
    monkeypatch.setattr(time, "time", lambda: past)
    token = signer.link_token("C1", "ap@acme.example", "", 1)
    monkeypatch.undo()
    with pytest.raises(TokenExpired) as info:
        signer.read_link(token)
    assert info.value.claims.customer_id == "C1" and info.value.claims.contact_id == "ap@acme.example"


def test_a_token_is_only_good_for_its_purpose():
    signer = Signer(SETTINGS)
    page = signer.page_token("page", "C1", 1)
    view = signer.page_token("view", "C1", 1, "I1")
    doc = signer.doc_token("C1", 1, "D1", "I1", "a" * 64 + ".pdf")
    link = signer.link_token("C1", "x@y.example", "", 1)
    assert signer.read_page_token("page", page).customer_id == "C1"
    assert signer.read_page_token("view", view).item == "I1"
    assert signer.read_doc_token(doc).name == "a" * 64 + ".pdf"
    for wrong in (lambda: signer.read_page_token("view", page), lambda: signer.read_page_token("page", view),
                  lambda: signer.read_link(doc), lambda: signer.read_link(page), lambda: signer.read_doc_token(link),
                  lambda: signer.read_doc_token(view)):
        with pytest.raises(TokenInvalid):
            wrong()


def test_doc_tokens_cannot_name_a_path():
    signer = Signer(SETTINGS)
    with pytest.raises(TokenInvalid):
        signer.read_doc_token(signer.doc_token("C1", 1, "D1", "", "../../c1/index.html"))


def test_page_tokens_are_deterministic_so_unchanged_pages_stay_byte_identical():
    assert Signer(SETTINGS).page_token("view", "C1", 1, "I1") == Signer(SETTINGS).page_token("view", "C1", 1, "I1")


def test_rotation_accepts_old_secret_for_tokens():
    old = Signer(SETTINGS)
    token = old.link_token("C1", "x@y.example", "", 1)
    rotated = Signer(SETTINGS.replace(secret_key="brand-new-secret-9876", secret_key_fallbacks=("s" * 32,)))
    assert rotated.read_link(token).customer_id == "C1"
    assert rotated.read_link(rotated.link_token("C1", "x@y.example", "", 1)).customer_id == "C1"
    assert rotated.customer_key("C1", 1) != old.customer_key("C1", 1)  # keys follow the newest secret


def test_page_and_doc_tokens_are_exactly_what_itsdangerous_makes():
    """The signer keys its HMAC once per purpose; the tokens must not change (pages stay byte-identical)."""
    signer = Signer(load_settings(env={}, config_file=None, secret_key="s" * 32,
                                  secret_key_fallbacks=["older-secret-0123456789"]))
    assert all(mac is not None for mac in signer._macs.values())  # the fast path is the one in use
    for customer_id, item in (("C1", ""), ("Müller & Söhne", "I-2026/001"), ("x" * 300, "y" * 300 + "z" * 300)):
        for purpose in ("page", "view", "unsubscribe"):
            token = signer.page_token(purpose, customer_id, 3, item)
            assert token == URLSafeSerializer(signer._secrets, salt=purpose).dumps([customer_id, 3, item])
            assert signer.read_page_token(purpose, token) == PageClaims(customer_id, 3, item)
        name = "a" * 64 + ".pdf"
        token = signer.doc_token(customer_id, 3, "D1", item, name)
        assert token == URLSafeSerializer(signer._secrets, salt="doc").dumps([customer_id, 3, "D1", item, name])
        assert signer.read_doc_token(token).name == name
