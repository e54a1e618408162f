"""PKCE (RFC 7636, S256) and the state value: RFC vectors and properties."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.oauth.rfc7636 import (
    is_valid_verifier,
    new_state,
    new_verifier,
    s256_challenge,
)
from tokenpost.secret import Secret

# RFC 7636 Appendix B
RFC_OCTETS = bytes(
    [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
     22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121]
)  # fmt: skip
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]+")


def fixed(data: bytes) -> Callable[[int], bytes]:
    def token_bytes(size: int) -> bytes:
        return data[:size]

    return token_bytes


def test_rfc_7636_appendix_b_verifier() -> None:
    assert new_verifier(fixed(RFC_OCTETS)).reveal() == RFC_VERIFIER


def test_rfc_7636_appendix_b_challenge() -> None:
    assert s256_challenge(Secret(RFC_VERIFIER)) == RFC_CHALLENGE


def test_default_randomness_differs() -> None:
    assert new_verifier() != new_verifier()
    assert new_state() != new_state()


def test_state_is_128_bits_base64url() -> None:
    state = new_state(fixed(bytes(range(16))))
    assert state.reveal() == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
    assert len(state) == 22


def test_short_randomness_is_refused() -> None:
    with pytest.raises(ValueError, match="returned 31 bytes"):
        new_verifier(lambda n: b"x" * (n - 1))


@pytest.mark.parametrize(
    "bad",
    ["", "a" * 42, "a" * 129, "a" * 42 + " ", "a" * 42 + "+", "a" * 42 + "=", "ä" * 43],
)
def test_invalid_verifier_is_refused_without_showing_it(bad: str) -> None:
    with pytest.raises(ValueError, match="43-128") as caught:
        s256_challenge(Secret(bad))
    if bad:
        assert bad not in str(caught.value)


@given(st.binary(min_size=32, max_size=32))
def test_verifier_alphabet_and_length(data: bytes) -> None:
    verifier = new_verifier(fixed(data)).reveal()
    assert len(verifier) == 43
    assert UNRESERVED.fullmatch(verifier)
    assert is_valid_verifier(verifier)


@given(st.from_regex(r"[A-Za-z0-9\-._~]{43,128}", fullmatch=True))
def test_challenge_is_base64url_sha256(verifier: str) -> None:
    challenge = s256_challenge(Secret(verifier))
    assert len(challenge) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)
    assert len(base64.urlsafe_b64decode(challenge + "=")) == 32
