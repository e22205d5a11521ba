"""Helpers for tests of signed tokens (tests/core/test_signing.py, tests/webhook/test_security.py)."""

from __future__ import annotations


def respellings(token: str) -> list[str]:
    """Spellings of `token` that itsdangerous' decoder reads as the same token (the HMAC covers the payload's
    text as written, so only the signature can be spelled differently)."""
    from itsdangerous.encoding import base64_decode

    payload, signature = token.rsplit(".", 1)
    spelled = [f"{payload}.{signature[:5]}!!{signature[5:]}", f"{payload}.{signature}=", f"{payload}.{signature}==",
               f"{payload}.{signature[:3]}\u00e9{signature[3:]}", f"{payload}.{signature[:4]}  {signature[4:]}"]
    if "-" in signature or "_" in signature:
        spelled.append(f'{payload}.{signature.replace("-", "+").replace("_", "/")}')
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spelled += [f"{payload}.{signature[:-1]}{c}" for c in alphabet
                if c != signature[-1] and base64_decode(signature[:-1] + c) == base64_decode(signature)]
    return spelled
