"""Customer path keys and signed tokens (docs/webhook.md: every token is checked in the order it gives).

- A customer key is HMAC-SHA256(secret, "customer_id:key_version"), base32, 26 characters (130 bits):
  the unguessable folder of that customer's pages. Revoking a customer bumps its key version, which moves
  its pages and invalidates every token that carries the old version.
- Tokens are itsdangerous signatures with one salt per purpose, so a token made for one purpose is never
  accepted for another. Emailed links (`link`) expire; tokens embedded in static pages (`page`, `view`,
  `doc`) carry no timestamp so a rebuild of unchanged data produces byte-identical pages, and they die
  with the key version instead. The payment reference Stripe sends the customer back with (`payment-ref`)
  carries the attempt and the key version, and expires.
- A token is read only in its canonical spelling (`is_canonical`): itsdangerous' base64 decoder skips
  characters outside its alphabet, takes `+` and `/` for `-` and `_`, ignores padding and the spare bits of
  the last character, so one genuine token has countless spellings that all verify. Each spelling would be a
  new key for the per-token rate limits; refused before verifying, every token has exactly one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int

from portal.core.config import Settings

CUSTOMER_KEY_LENGTH = 26
# How long the page Stripe sends the customer back to (/pay/done, /pay/cancelled) answers: a Checkout session
# lives at most 24 hours, and the address stays in the browser's history long after.
PAY_REF_MAX_AGE = 2 * 86400
# An address confirms within a week of being typed in; after that the customer asks again.
CONTACT_CONFIRM_MAX_AGE = 7 * 86400
_OBJECT_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")
PURPOSES = ("link", "page", "view", "doc", "fresh", "unsubscribe")


class TokenInvalid(Exception):
    """Tampered, wrong purpose, or malformed: callers show a plain not-found page and record nothing."""


class TokenExpired(Exception):
    """Genuine but too old; `claims` is the verified content so a fresh link can be offered."""

    def __init__(self, claims: LinkClaims):
        super().__init__("link expired")
        self.claims = claims


@dataclass(frozen=True)
class LinkClaims:
    customer_id: str
    contact_id: str
    invoice_id: str
    key_version: int


@dataclass(frozen=True)
class PayRef:
    """What the reference of a payment page proves: this attempt, made at this key version of its customer."""

    attempt_id: str
    key_version: int


@dataclass(frozen=True)
class PageClaims:
    """What a token embedded in a page proves: this customer (at this key version), maybe this item."""

    customer_id: str
    key_version: int
    item: str = ""  # invoice id for page/view tokens on an invoice page, document id for doc tokens


_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# The last character of a segment whose length is 2 or 3 (mod 4) carries 4 or 2 spare bits; the canonical
# spelling has them zero. A length of 1 (mod 4) decodes to nothing whole.
_LAST = {0: None, 2: frozenset(_BASE64[::16]), 3: frozenset(_BASE64[::4])}


def is_canonical(token: str) -> bool:
    """True when `token` is spelled exactly as itsdangerous writes it: an optional leading "." (a compressed
    payload), then two or three "."-separated segments of unpadded URL-safe base64 with no spare bits set."""
    segments = token.split(".")
    if segments[0] == "":
        segments = segments[1:]
    if not 2 <= len(segments) <= 3:
        return False
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            return False
        rest = len(segment) % 4
        if rest == 1:
            return False
        allowed = _LAST[rest]
        if allowed is not None and segment[-1] not in allowed:
            return False
    return True


class CanonicalTimedSerializer(URLSafeTimedSerializer):
    """URLSafeTimedSerializer that refuses a token not in its canonical spelling (see `is_canonical`)."""

    def loads(self, s: str | bytes, max_age: int | None = None, return_timestamp: bool = False,
              salt: str | bytes | None = None) -> Any:
        if not is_canonical(s.decode("ascii", "replace") if isinstance(s, bytes) else s):
            raise BadSignature("token not in canonical form")
        return super().loads(s, max_age=max_age, return_timestamp=return_timestamp, salt=salt)


def customer_key(secret: str, customer_id: str, key_version: int) -> str:
    digest = hmac.new(secret.encode(), f"{customer_id}:{key_version}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:CUSTOMER_KEY_LENGTH].lower()


class Signer:
    """Makes and checks every token with the configured secret (and older secrets during a rotation)."""

    def __init__(self, settings: Settings):
        # itsdangerous takes the newest secret LAST; fallbacks are configured newest first.
        self._secrets = [*reversed(settings.secret_key_fallbacks), settings.secret_key]
        self.secret = settings.secret_key
        self.link_max_age = settings.link_ttl_days * 86400
        # Links expire (timed); tokens in static pages do not (see the module docstring).
        self._codecs = {p: _Codec(URLSafeSerializer(self._secrets, salt=p)) for p in PURPOSES}
        self._link_codec = _Codec(URLSafeTimedSerializer(self._secrets, salt="link"), max_age=self.link_max_age)
        self._pay_ref_codec = _Codec(URLSafeTimedSerializer(self._secrets, salt="payment-ref"),
                                     max_age=PAY_REF_MAX_AGE)
        # Emailed self-service links (portal/selfservice): an address's confirmation, an approver's invoice link.
        self._action_codecs = {
            purpose: _Codec(URLSafeTimedSerializer(self._secrets, salt=purpose), max_age=age)
            for purpose, age in (("contact-confirm", CONTACT_CONFIRM_MAX_AGE), ("approve", self.link_max_age))}

    def customer_key(self, customer_id: str, key_version: int) -> str:
        return customer_key(self.secret, customer_id, key_version)

    # Emailed links: timed.
    def link_token(self, customer_id: str, contact_id: str, invoice_id: str, key_version: int) -> str:
        return self._link_codec.dumps([customer_id, contact_id, invoice_id, key_version])

    def read_link(self, token: str) -> LinkClaims:
        try:
            data = self._link_codec.loads(token)
        except SignatureExpired as exc:
            # The signature is genuine (itsdangerous checks it before the age), so the payload is ours.
            raise TokenExpired(_link_claims(exc.payload and self._link_codec.load_payload(exc.payload))) from None
        except BadSignature:
            raise TokenInvalid("bad link token") from None
        return _link_claims(data)

    # The payment page's reference: timed, bound to the key version.
    def pay_ref(self, attempt_id: str, key_version: int) -> str:
        return self._pay_ref_codec.dumps([attempt_id, key_version])

    def read_pay_ref(self, ref: str) -> PayRef:
        """The attempt and key version of a reference; TokenInvalid when tampered, malformed or expired."""
        try:
            data = self._pay_ref_codec.loads(ref)
        except BadSignature:  # includes SignatureExpired
            raise TokenInvalid("bad or expired payment reference") from None
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], str)
                and isinstance(data[1], int)):
            raise TokenInvalid("malformed payment reference")
        return PayRef(data[0], data[1])

    def action_token(self, purpose: str, customer_id: str, key_version: int, item: str) -> str:
        """A timed token for an emailed self-service link ("contact-confirm", "approve"), naming one record."""
        return self._action_codecs[purpose].dumps([customer_id, key_version, item])

    def read_action_token(self, purpose: str, token: str) -> PageClaims:
        """The claims of an action token; TokenInvalid when tampered, malformed, of another purpose or expired."""
        try:
            data = self._action_codecs[purpose].loads(token)
        except BadSignature:  # includes SignatureExpired
            raise TokenInvalid(f"bad or expired {purpose} token") from None
        if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], str)
                and isinstance(data[1], int) and isinstance(data[2], str)):
            raise TokenInvalid(f"malformed {purpose} token")
        return PageClaims(data[0], data[1], data[2])

    # Tokens inside static pages: untimed, bound to the key version.
    def page_token(self, purpose: str, customer_id: str, key_version: int, item: str = "") -> str:
        if purpose not in ("page", "view", "unsubscribe"):
            raise ValueError(f"{purpose} is not a page-token purpose")
        return self._codecs[purpose].dumps([customer_id, key_version, item])

    def doc_token(self, customer_id: str, key_version: int, document_id: str, invoice_id: str, name: str) -> str:
        """A document link. The object's folder is NOT in the token: the webhook derives it from the
        verified customer and key version, so no token can point into another customer's folder."""
        return self._codecs["doc"].dumps([customer_id, key_version, document_id, invoice_id, name])

    def read_doc_token(self, token: str) -> DocClaims:
        try:
            return _doc_claims(self._codecs["doc"].loads(token))
        except BadSignature:
            raise TokenInvalid("bad doc token") from None

    def read_page_token(self, purpose: str, token: str) -> PageClaims:
        try:
            data = self._codecs[purpose].loads(token)
        except BadSignature:
            raise TokenInvalid(f"bad {purpose} token") from None
        if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], str)
                and isinstance(data[1], int) and isinstance(data[2], str)):
            raise TokenInvalid(f"malformed {purpose} token")
        return PageClaims(data[0], data[1], data[2])


_PROBES = (["probe", 1, ""], ["prøbe", 2, "x" * 200])  # the second one compresses
# itsdangerous' compact JSON (json.dumps with these separators), with the encoder made once, not per call.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _sign(mac: hmac.HMAC, value: list) -> str:
    """What URLSafeSerializer.dumps makes: compact JSON, zlib-compressed when that is shorter, base64,
    "." and the base64 HMAC of all that."""
    payload = _COMPACT_JSON.encode(value).encode()
    compressed = zlib.compress(payload)
    if len(compressed) < len(payload) - 1:
        payload = b"." + base64_encode(compressed)
    else:
        payload = base64_encode(payload)
    signature = mac.copy()
    signature.update(payload)
    return (payload + b"." + base64_encode(signature.digest())).decode("ascii")


_SLOW = object()  # _Codec._fast's "not for me to decide"


class _Codec:
    """`dumps` and `loads` of one serializer, byte for byte, with its HMACs keyed once. itsdangerous derives the
    key again and builds a pure-Python HMAC for every token: a build signs one to five tokens per page, and
    every emailed link and beacon is checked on the webhook's hot path (measured: a third of the link route's
    own work besides the database).

    `loads` answers only the plain case here: a token whose HMAC matches one of the secrets and, when timed,
    whose age is within 0..max_age. Anything else (tampered, expired, malformed, another purpose) goes to
    itsdangerous' own `loads`, which checks everything again and raises its precise error, so this cannot
    accept a token that itsdangerous would refuse. Probe tokens at start-up check that both ways agree with
    itsdangerous; where they do not, itsdangerous does the work alone. (Timed tokens are signed by
    itsdangerous: they carry the time of signing, and only links are timed.)"""

    def __init__(self, serializer: URLSafeSerializer, max_age: int | None = None):
        self._serializer = serializer
        self._max_age = max_age
        self._timed = isinstance(serializer, URLSafeTimedSerializer)
        self._macs: list[hmac.HMAC] = []  # for reading, newest secret first (as itsdangerous tries them)
        self._signing: hmac.HMAC | None = None  # the newest secret's, the one itsdangerous signs with
        signer = serializer.make_signer()
        try:
            macs = [hmac.new(signer.derive_key(key), digestmod=hashlib.sha1) for key in reversed(signer.secret_keys)]
            if not self._timed and all(_sign(macs[0], probe) == serializer.dumps(probe) for probe in _PROBES):
                self._signing = macs[0]
            self._macs = macs
            if not all(self._fast(serializer.dumps(probe)) == probe for probe in _PROBES):
                self._macs = []
        except Exception:  # noqa: BLE001 - any surprise (another algorithm, a FIPS build): itsdangerous alone
            self._macs, self._signing = [], None

    def dumps(self, value: list) -> str:
        if self._signing is None:
            return self._serializer.dumps(value)
        return _sign(self._signing, value)

    def load_payload(self, payload: bytes) -> Any:
        """The content of a payload whose signature was verified (an expired link's, for a fresh link)."""
        return self._serializer.load_payload(payload)

    def loads(self, token: str) -> Any:
        if not is_canonical(token):
            raise BadSignature("token not in canonical form")
        data = self._fast(token) if self._macs else _SLOW
        if data is not _SLOW:
            return data
        if self._timed:
            return self._serializer.loads(token, max_age=self._max_age)
        return self._serializer.loads(token)

    def _fast(self, token: str) -> Any:
        try:
            value, signature = token.encode("ascii").rsplit(b".", 1)
            expected = base64_decode(signature)
            for mac in self._macs:
                check = mac.copy()
                check.update(value)
                if hmac.compare_digest(check.digest(), expected):
                    break
            else:
                return _SLOW
            if self._timed:
                value, stamp = value.rsplit(b".", 1)
                age = int(time.time()) - bytes_to_int(base64_decode(stamp))
                if self._max_age is not None and not 0 <= age <= self._max_age:
                    return _SLOW  # expired or from the future: itsdangerous raises SignatureExpired
            return self._serializer.load_payload(value)
        except Exception:  # noqa: BLE001 - malformed in any way: itsdangerous decides and names the error
            return _SLOW


@dataclass(frozen=True)
class DocClaims:
    customer_id: str
    key_version: int
    document_id: str  # a documents.csv id, or "invoice:<id>" / "statement" for PDFs the build rendered
    invoice_id: str
    name: str  # the object name under docs/<customer_key>/: "<sha256>.<ext>"


def _doc_claims(data: Any) -> DocClaims:
    if not (isinstance(data, list) and len(data) == 5 and isinstance(data[1], int)
            and all(isinstance(v, str) for v in (data[0], *data[2:]))):
        raise TokenInvalid("malformed doc token")
    if not _OBJECT_NAME.fullmatch(data[4]):
        raise TokenInvalid("doc token names no document")
    return DocClaims(data[0], data[1], data[2], data[3], data[4])


def _link_claims(data: Any) -> LinkClaims:
    if not (isinstance(data, list) and len(data) == 4 and all(isinstance(v, str) for v in data[:3])
            and isinstance(data[3], int)):
        raise TokenInvalid("malformed link token")
    return LinkClaims(data[0], data[1], data[2], data[3])
