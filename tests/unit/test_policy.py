"""Refresh timing, usability and back-off."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.secret import Secret
from tokenpost.tokens.policy import (
    DEFAULT_REFRESH_MARGIN,
    RETRY_BASE,
    RETRY_CAP,
    USABLE_SKEW,
    backoff_ceiling,
    is_usable,
    needs_refresh,
    refresh_due_at,
    retry_delay,
)
from tokenpost.tokens.state import Acquired


def token(
    obtained_at: float, expires_at: float, *, retry_at: float | None = None, failures: int = 0
) -> Acquired:
    return Acquired(
        access_token=Secret("s3cr3t"),
        expires_at=expires_at,
        obtained_at=obtained_at,
        refresh_token=Secret("s3cr3t-rt"),
        failures=failures,
        retry_at=retry_at,
    )


def test_default_margin_is_ten_minutes() -> None:
    assert DEFAULT_REFRESH_MARGIN == 600


@pytest.mark.parametrize(
    ("obtained_at", "expires_at", "margin", "retry_at", "due"),
    [
        # A 1 h Microsoft token: ten minutes early.
        (1000.0, 4600.0, 600, None, 4000.0),
        # 75 min (the average Entra lifetime).
        (0.0, 4500.0, 600, None, 3900.0),
        # A 5-minute token is refreshed at half its life, not immediately and in a loop.
        (1000.0, 1300.0, 600, None, 1150.0),
        # Exactly twice the margin: both rules agree.
        (0.0, 1200.0, 600, None, 600.0),
        # No margin: at expiry.
        (0.0, 3600.0, 0, None, 3600.0),
        # A later retry_at wins after a transient failure ...
        (1000.0, 4600.0, 600, 4100.0, 4100.0),
        # ... an earlier one does not bring the refresh forward.
        (1000.0, 4600.0, 600, 2000.0, 4000.0),
        # A token already expired when stored: due at once (in the past).
        (1000.0, 900.0, 600, None, 950.0),
    ],
)
def test_refresh_due_at(
    obtained_at: float, expires_at: float, margin: float, retry_at: float | None, due: float
) -> None:
    assert refresh_due_at(token(obtained_at, expires_at, retry_at=retry_at), margin) == due


def test_needs_refresh_switches_at_due_time() -> None:
    state = token(1000.0, 4600.0)
    assert not needs_refresh(state, 3999.9, 600)
    assert needs_refresh(state, 4000.0, 600)
    assert needs_refresh(state, 9999.0, 600)


def test_is_usable_keeps_a_skew_before_expiry() -> None:
    state = token(1000.0, 4600.0)
    assert USABLE_SKEW == 30.0
    assert is_usable(state, 4569.9)
    assert not is_usable(state, 4570.0)
    assert not is_usable(state, 5000.0)


lifetimes = st.floats(min_value=1, max_value=1e7)
instants = st.floats(min_value=0, max_value=1e9)
margins = st.floats(min_value=0, max_value=1e5)


@given(instants, lifetimes, margins)
def test_refresh_is_due_within_the_tokens_second_half_of_life(
    obtained_at: float, lifetime: float, margin: float
) -> None:
    state = token(obtained_at, obtained_at + lifetime)
    due = refresh_due_at(state, margin)
    half_life = obtained_at + (state.expires_at - obtained_at) / 2
    assert half_life <= due <= state.expires_at
    assert due >= state.expires_at - margin


@given(instants, lifetimes, margins, instants)
def test_refresh_is_never_due_before_retry_at(
    obtained_at: float, lifetime: float, margin: float, retry_at: float
) -> None:
    state = token(obtained_at, obtained_at + lifetime, retry_at=retry_at, failures=1)
    assert refresh_due_at(state, margin) >= retry_at
    assert not needs_refresh(state, retry_at - 1, margin)


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [(0, 5.0), (1, 10.0), (2, 20.0), (3, 40.0), (7, 640.0), (8, 900.0), (50, 900.0)],
)
def test_backoff_ceiling_doubles_to_the_cap(failures: int, ceiling: float) -> None:
    assert backoff_ceiling(failures) == ceiling


@pytest.mark.parametrize(("fraction", "delay"), [(0.0, 20.0), (0.5, 30.0), (1.0, 40.0)])
def test_retry_delay_jitters_between_half_and_all_of_the_ceiling(
    fraction: float, delay: float
) -> None:
    assert retry_delay(3, random=lambda: fraction) == delay


def test_retry_delay_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="failures"):
        retry_delay(-1)


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_delay_within_bounds_with_the_real_random(failures: int) -> None:
    ceiling = backoff_ceiling(failures)
    assert RETRY_BASE <= ceiling <= RETRY_CAP
    assert ceiling / 2 <= retry_delay(failures) <= ceiling


@given(st.integers(min_value=0, max_value=10**6), st.floats(min_value=-1, max_value=2))
def test_retry_delay_bounds_hold_for_any_random_source(failures: int, fraction: float) -> None:
    ceiling = backoff_ceiling(failures)
    assert ceiling / 2 <= retry_delay(failures, random=lambda: fraction) <= ceiling


@given(st.integers(min_value=0, max_value=10**4), st.floats(min_value=0, max_value=1))
def test_caps_and_delays_are_monotone_in_failures(failures: int, fraction: float) -> None:
    assert backoff_ceiling(failures) <= backoff_ceiling(failures + 1)
    assert retry_delay(failures, random=lambda: fraction) <= retry_delay(
        failures + 1, random=lambda: fraction
    )
