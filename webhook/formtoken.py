"""The page token of a form (/pay, /dispute, /question): read before the body is parsed, and verified in one place.

- `form_token(name)` reads the token without parsing the body when the form is multipart (the dispute form,
  up to 5 files of 10 MB): only the first part is read, which is the token, since the pages put the hidden
  `page_token` field first and browsers send fields in document order. The bytes read are handed back to the
  request, so the body is parsed (once) as usual after the token and the rate limits have been checked. A
  request whose first part is not the token has no token. Small url-encoded forms are parsed as usual.
- `page_claims(route)` is the one check of a form's page token: its signature and spelling (portal/core/signing.py),
  then its key version against the store, so a revoked customer's page learns nothing (the plain 404) before
  any other check runs. The result is kept for the rest of the request.
"""

from __future__ import annotations

import io
from typing import Any

from flask import g, request
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Field, File, MultipartDecoder, NeedData, Preamble

from portal.core.signing import PageClaims, TokenInvalid
from webhook.errors import TokenRejected
from webhook.services import services

PEEK_LIMIT = 16 * 1024  # bytes read at most to find the first field: a token is ~100 characters
_CHUNK = 4096


class _Prefixed(io.RawIOBase):
    """The request body again: the bytes already read, then the rest of the original stream."""

    def __init__(self, head: bytes, rest: Any):
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _first_multipart_field(boundary: bytes, name: str) -> str:
    """The value of the body's first part when it is the field `name` (else ""); the bytes read go back."""
    environ = request.environ
    length = request.content_length
    if length is None and "wsgi.input_terminated" not in environ:
        return ""  # no length and no server that ends the stream: werkzeug reads no body either
    budget = min(PEEK_LIMIT, length) if length is not None else PEEK_LIMIT
    original = environ["wsgi.input"]
    head = bytearray()
    decoder = MultipartDecoder(boundary, max_form_memory_size=PEEK_LIMIT)
    value, found = bytearray(), False
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, NeedData):
                if len(head) >= budget:
                    return ""
                chunk = original.read(min(_CHUNK, budget - len(head)))
                if not chunk:
                    return ""  # the body ended before its first part did
                head += chunk
                decoder.receive_data(chunk)
            elif isinstance(event, Preamble):
                continue
            elif isinstance(event, Field) and not found:
                if isinstance(event, File) or event.name != name:  # File is a kind of Field
                    return ""
                found = True
            elif isinstance(event, Data) and found:
                value += event.data
                if not event.more_data:
                    return value.decode("utf-8", "replace")
            else:  # a file first, or the end of the body: no token where the pages put it
                return ""
    except ValueError:  # not multipart after all, or a part too large: no token
        return ""
    finally:
        environ["wsgi.input"] = _Prefixed(bytes(head), original)


def form_token(name: str) -> str:
    """The form field `name` (a token) as the first thing read of the request's body."""
    read: dict[str, str] = g.setdefault("form_tokens", {})
    if name in read:
        return read[name]
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype == "multipart/form-data" and "stream" not in vars(request._get_current_object()):
        token = _first_multipart_field(options.get("boundary", "").encode("latin-1"), name) \
            if options.get("boundary") else ""
    else:
        token = request.form.get(name, "")
    read[name] = token
    return token


def page_claims(route: str) -> PageClaims:
    """The verified claims of the form's page token, its key version the customer's current one; TokenRejected
    (the plain 404, nothing recorded) otherwise."""
    claims = g.get("page_claims")
    if claims is not None:
        return claims
    s = services()
    token = form_token("page_token")
    try:
        claims = s.signer.read_page_token("page", token)
    except TokenInvalid as exc:
        raise TokenRejected(route, token, str(exc)) from None
    if s.store.active_key_version(claims.customer_id) != claims.key_version:
        raise TokenRejected(route, token, "revoked or unknown customer")
    g.page_claims = claims
    return claims
