"""RFC 7636: Proof Key for Code Exchange, S256 only, and the `state` value of RFC 6749 §10.12.

`plain` is never offered: RFC 9700 §2.1.1 says clients SHOULD use S256, and every provider we
target supports it. Randomness is a parameter (`token_bytes`) so tests can fix it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Final

from tokenpost.secret import Secret

VERIFIER_BYTES: Final = 32  # §4.1: 32 octets → a 43-character verifier
STATE_BYTES: Final = 16  # 128 bits: unguessable for the life of one authorization

# §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

TokenBytes = Callable[[int], bytes]


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _random_text(token_bytes: TokenBytes, size: int) -> str:
    data = token_bytes(size)
    if len(data) != size:
        raise ValueError(f"token_bytes returned {len(data)} bytes, not {size}")
    return _base64url(data)


def is_valid_verifier(text: str) -> bool:
    """True if `text` is a code verifier as §4.1 defines it."""
    return _VERIFIER.fullmatch(text) is not None


def new_verifier(token_bytes: TokenBytes = secrets.token_bytes) -> Secret:
    """A fresh code verifier: base64url of 32 random octets, unpadded (§4.1)."""
    return Secret(_random_text(token_bytes, VERIFIER_BYTES))


def new_state(token_bytes: TokenBytes = secrets.token_bytes) -> Secret:
    """A fresh `state` value binding the redirect to this authorization (RFC 6749 §10.12)."""
    return Secret(_random_text(token_bytes, STATE_BYTES))


def s256_challenge(verifier: Secret) -> str:
    """The S256 code challenge: BASE64URL(SHA256(ASCII(verifier))) (§4.2).

    Raises:
        ValueError: the verifier breaks §4.1 (the message does not contain it).
    """
    value = verifier.reveal()
    if not is_valid_verifier(value):
        raise ValueError("a PKCE code verifier is 43-128 characters of A-Z a-z 0-9 - . _ ~")
    return _base64url(hashlib.sha256(value.encode("ascii")).digest())
