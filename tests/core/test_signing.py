"""Customer keys and tokens: one salt per purpose, expiry, key versions, rotation."""

from __future__ import annotations

import re
import time

import pytest
from itsdangerous import URLSafeSerializer

from portal.core.config import load_settings
from portal.core.signing import CUSTOMER_KEY_LENGTH, PageClaims, Signer, TokenExpired, TokenInvalid, customer_key
from tests.tokens import respellings

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
    assert all(codec._signing is not None for codec in signer._codecs.values())  # the fast path is in use
    for customer_id, item in (("C1", ""), ("Müller & Söhne", "I-2026/001"), ("x" * 300, "y" * 300 + "z" * 300)):
        for purpose in ("page", "view", "unsubscribe"):
            token = signer.page_token(purpose, customer_id, 3, item)
            assert token == URLSafeSerializer(signer._secrets, salt=purpose).dumps([customer_id, 3, item])
            assert signer.read_page_token(purpose, token) == PageClaims(customer_id, 3, item)
        name = "a" * 64 + ".pdf"
        token = signer.doc_token(customer_id, 3, "D1", item, name)
        assert token == URLSafeSerializer(signer._secrets, salt="doc").dumps([customer_id, 3, "D1", item, name])
        assert signer.read_doc_token(token).name == name


def _outcome(read, token):
    try:
        return read(token)
    except (TokenInvalid, TokenExpired) as exc:
        return type(exc).__name__


def _respelled(token: str) -> bool:
    """Not as itsdangerous writes tokens: a segment that does not survive decoding and encoding again (stray
    characters, padding, spare bits set), or an empty one."""
    from itsdangerous.encoding import base64_decode, base64_encode

    segments = token.split(".")
    segments = segments[1:] if segments[0] == "" else segments
    try:
        return not all(seg and base64_encode(base64_decode(seg)).decode() == seg for seg in segments)
    except Exception:  # noqa: BLE001 - undecodable: not a token itsdangerous wrote
        return True


def test_token_reading_agrees_with_itsdangerous_on_good_and_bad_tokens(monkeypatch):
    """Links, beacons and documents are checked with HMACs keyed once (the webhook's hot path); every token,
    good or bad, must get the answer itsdangerous alone gives, but for one difference: a token not spelled
    as itsdangerous writes it is refused (itsdangerous accepts many spellings of one token; see
    test_respelled_tokens_are_refused)."""
    from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

    settings = load_settings(env={}, config_file=None, secret_key="n" * 32, link_ttl_days=2,
                             secret_key_fallbacks=["older-secret-0123456789"])
    signer = Signer(settings)
    assert signer._link_codec._macs and all(codec._macs for codec in signer._codecs.values())
    old = Signer(settings.replace(secret_key="older-secret-0123456789", secret_key_fallbacks=()))
    stranger = Signer(settings.replace(secret_key="someone-else-0123456789", secret_key_fallbacks=()))
    now = time.time()
    links = [signer.link_token("C1", "ap@acme.example", "I1", 1), old.link_token("C2", "x@y.example", "", 4),
             signer.link_token("Müller" * 60, "a@b.example", "I" * 300, 2),  # compressed
             stranger.link_token("C1", "ap@acme.example", "I1", 1), signer.page_token("view", "C1", 1, "I1")]
    for offset in (-3 * 86400, -2 * 86400 + 5, 3600):  # expired, nearly expired, from the future
        monkeypatch.setattr(time, "time", lambda offset=offset: now + offset)
        links.append(signer.link_token("C3", "c@d.example", "", 1))
        monkeypatch.undo()
    pages = [signer.page_token("view", "C1", 1, "I1"), old.page_token("view", "C1", 2, ""),
             signer.page_token("view", "Ü" * 300, 1, "x" * 300), stranger.page_token("view", "C1", 1, "I1"),
             signer.page_token("page", "C1", 1, "I1"), links[0]]
    garbage = ["", ".", "..", "a.b.c", "é.é", "x" * 500, links[0][:-1], links[0] + "=", links[0].replace(".", "..", 1),
               "." + links[0], links[0].upper()]
    secrets = [*reversed(settings.secret_key_fallbacks), settings.secret_key]
    timed = URLSafeTimedSerializer(secrets, salt="link")
    view = URLSafeSerializer(secrets, salt="view")

    def reference_link(token):
        if _respelled(token):
            return "TokenInvalid"
        try:
            data = timed.loads(token, max_age=2 * 86400)
        except SignatureExpired:
            return "TokenExpired"
        except BadSignature:
            return "TokenInvalid"
        return data if isinstance(data, list) and len(data) == 4 else "TokenInvalid"

    def reference_view(token):
        if _respelled(token):
            return "TokenInvalid"
        try:
            data = view.loads(token)
        except BadSignature:
            return "TokenInvalid"
        return data if isinstance(data, list) and len(data) == 3 else "TokenInvalid"

    def ours_link(token):
        claims = _outcome(signer.read_link, token)
        return claims if isinstance(claims, str) else [claims.customer_id, claims.contact_id, claims.invoice_id,
                                                        claims.key_version]

    def ours_view(token):
        claims = _outcome(lambda t: signer.read_page_token("view", t), token)
        return claims if isinstance(claims, str) else [claims.customer_id, claims.key_version, claims.item]

    outcomes = {ours_link(t) == reference_link(t) for t in links + garbage}
    assert outcomes == {True}
    assert {ours_view(t) == reference_view(t) for t in pages + garbage} == {True}
    # The cases really differ: accepted, expired and refused tokens are all among them.
    kinds = {r if isinstance(r, str) else "accepted" for r in map(reference_link, links + garbage)}
    assert kinds == {"accepted", "TokenExpired", "TokenInvalid"}


def test_respelled_tokens_are_refused():
    from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

    from portal.core.signing import CanonicalTimedSerializer, is_canonical

    settings = load_settings(env={}, config_file=None, secret_key="r" * 32)
    signer = Signer(settings)
    secrets = [settings.secret_key]
    readers = {
        "link": (signer.link_token("C1", "ap@acme.example", "I-1_x", 1), signer.read_link,
                 lambda t: URLSafeTimedSerializer(secrets, salt="link").loads(t)),
        "page": (signer.page_token("page", "C1", 1, ""), lambda t: signer.read_page_token("page", t),
                 lambda t: URLSafeSerializer(secrets, salt="page").loads(t)),
        "view": (signer.page_token("view", "C1", 1, "I1"), lambda t: signer.read_page_token("view", t),
                 lambda t: URLSafeSerializer(secrets, salt="view").loads(t)),
        "unsubscribe": (signer.page_token("unsubscribe", "C1", 1, "k1"),
                        lambda t: signer.read_page_token("unsubscribe", t),
                        lambda t: URLSafeSerializer(secrets, salt="unsubscribe").loads(t)),
        "doc": (signer.doc_token("C1", 1, "D1", "", "a" * 64 + ".pdf"), signer.read_doc_token,
                lambda t: URLSafeSerializer(secrets, salt="doc").loads(t)),
        "pay ref": (signer.pay_ref("pa_0123", 1), signer.read_pay_ref,
                    lambda t: URLSafeTimedSerializer(secrets, salt="payment-ref").loads(t)),
    }
    for purpose, (token, ours, theirs) in readers.items():
        assert is_canonical(token)
        ours(token)
        spelled = respellings(token)
        assert len(spelled) >= 8, purpose
        for variant in spelled:
            theirs(variant)  # itsdangerous reads each as the genuine token...
            assert not is_canonical(variant), (purpose, variant)
            with pytest.raises(TokenInvalid):  # ...we do not
                ours(variant)
    fresh = CanonicalTimedSerializer(secrets, salt="fresh")
    token = fresh.dumps(["C1", "k1", "", 1])
    assert fresh.loads(token, max_age=60) == ["C1", "k1", "", 1]
    for variant in respellings(token):
        with pytest.raises(BadSignature, match="canonical"):
            fresh.loads(variant, max_age=60)
