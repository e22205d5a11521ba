"""Customer path keys and signed tokens (DESIGN.md section 5).

- A customer key is HMAC-SHA256(secret, "customer_id:key_version"), base32, 26 characters (130 bits):
  the unguessable folder of that customer's pages. Revoking a customer bumps its key version, which moves
  its pages and invalidates every token that carries the old version.
- Tokens are itsdangerous signatures with one salt per purpose, so a token made for one purpose is never
  accepted for another. Emailed links (`link`) expire; tokens embedded in static pages (`page`, `view`,
  `doc`) carry no timestamp so a rebuild of unchanged data produces byte-identical pages, and they die
  with the key version instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from .config import Settings

CUSTOMER_KEY_LENGTH = 26
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
class PageClaims:
    """What a token embedded in a page proves: this customer (at this key version), maybe this item."""

    customer_id: str
    key_version: int
    item: str = ""  # invoice id for page/view tokens on an invoice page, document id for doc tokens


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
        self._static = {p: URLSafeSerializer(self._secrets, salt=p) for p in PURPOSES}
        self._timed = {p: URLSafeTimedSerializer(self._secrets, salt=p) for p in PURPOSES}

    def customer_key(self, customer_id: str, key_version: int) -> str:
        return customer_key(self.secret, customer_id, key_version)

    # Emailed links: timed.
    def link_token(self, customer_id: str, contact_id: str, invoice_id: str, key_version: int) -> str:
        return self._timed["link"].dumps([customer_id, contact_id, invoice_id, key_version])

    def read_link(self, token: str) -> LinkClaims:
        try:
            data = self._timed["link"].loads(token, max_age=self.link_max_age)
        except SignatureExpired as exc:
            # The signature is genuine (itsdangerous checks it before the age), so the payload is ours.
            raise TokenExpired(_link_claims(exc.payload and self._timed["link"].load_payload(exc.payload)))
        except BadSignature:
            raise TokenInvalid("bad link token") from None
        return _link_claims(data)

    # Tokens inside static pages: untimed, bound to the key version.
    def page_token(self, purpose: str, customer_id: str, key_version: int, item: str = "") -> str:
        if purpose not in ("page", "view", "doc", "unsubscribe"):
            raise ValueError(f"{purpose} is not a page-token purpose")
        return self._static[purpose].dumps([customer_id, key_version, item])

    def read_page_token(self, purpose: str, token: str) -> PageClaims:
        try:
            data = self._static[purpose].loads(token)
        except BadSignature:
            raise TokenInvalid(f"bad {purpose} token") from None
        if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], str)
                and isinstance(data[1], int) and isinstance(data[2], str)):
            raise TokenInvalid(f"malformed {purpose} token")
        return PageClaims(data[0], data[1], data[2])


def _link_claims(data: Any) -> LinkClaims:
    if not (isinstance(data, list) and len(data) == 4 and all(isinstance(v, str) for v in data[:3])
            and isinstance(data[3], int)):
        raise TokenInvalid("malformed link token")
    return LinkClaims(data[0], data[1], data[2], data[3])
