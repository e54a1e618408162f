"""`Secret` never shows its value: not in str, repr, f-strings, containers, errors or pickles."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import OAuthError
from tokenpost.secret import REDACTED, Secret, reveal_optional
from tokenpost.tokens.state import Acquired

VALUE = "sbx_at_the-real-token-value"


@pytest.mark.parametrize(
    "render",
    [str, repr, lambda s: f"{s}", lambda s: f"{s!r}", lambda s: f"{s:>40}", format],
)
def test_no_rendering_shows_the_value(render: object) -> None:
    shown = render(Secret(VALUE))  # type: ignore[operator]
    assert VALUE not in shown
    assert REDACTED in shown


def test_containers_and_dataclasses_show_no_value() -> None:
    state = Acquired(access_token=Secret(VALUE), expires_at=1.0, obtained_at=0.0)
    for shown in (repr([Secret(VALUE)]), repr({"t": Secret(VALUE)}), repr(state), str(state)):
        assert VALUE not in shown


def test_errors_and_log_records_show_no_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    error = OAuthError(f"refresh with {secret} failed")
    assert VALUE not in str(error)
    with caplog.at_level(logging.INFO):
        logging.getLogger("tokenpost.test").info("token %s / %r", secret, secret)
    assert VALUE not in caplog.text


def test_reveal_is_the_only_way_to_the_value() -> None:
    secret = Secret(VALUE)
    assert secret.reveal() == VALUE
    assert reveal_optional(secret) == VALUE
    assert reveal_optional(None) is None


def test_cannot_be_pickled_or_changed() -> None:
    secret = Secret(VALUE)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "other"  # type: ignore[misc]
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret


def test_refuses_non_strings() -> None:
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


@given(st.text(), st.text())
def test_equality_follows_the_value(a: str, b: str) -> None:
    assert (Secret(a) == Secret(b)) == (a == b)
    assert Secret(a) != a  # a Secret never equals a plain string
    assert bool(Secret(a)) == bool(a)
    assert len(Secret(a)) == len(a)
