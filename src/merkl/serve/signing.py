"""HMAC signatures of request bodies that carry client-sent cache values.

A cached value cannot be checked against its Merkle hash (the hash covers code and inputs, not
the value), so the server trusts client-sent values only from a client that holds the shared
secret: `X-Merkl-Signature` is the hex HMAC-SHA256 of the raw body bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os

SIGNATURE_HEADER = "X-Merkl-Signature"
DEFAULT_SECRET_ENV = "MERKL_SERVE_SECRET"


def sign_body(body: bytes, secret: str | bytes) -> str:
    """The hex HMAC-SHA256 of `body` with `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def is_valid_signature(body: bytes, secret: str | bytes, signature: str | None) -> bool:
    """True when `signature` is the signature of `body`; compared in constant time."""
    if not signature:
        return False
    expected = sign_body(body, secret)
    # Bytes, not str: compare_digest refuses non-ASCII str, and headers may hold anything.
    given = signature.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected.encode(), given)


def read_secret(env_var: str) -> str | None:
    """The secret in `$env_var`, or None when it is unset or empty."""
    return os.environ.get(env_var) or None
