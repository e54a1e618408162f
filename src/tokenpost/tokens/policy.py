"""When to refresh an acquired token, whether it can still be used, and how long to back off.

Pure timing rules; the refresh service applies them. Refresh is proactive (RFC 6749 §6 lets a client
refresh at any time): Microsoft rejects access tokens some minutes before their stated expiry
(DESIGN.md), so tokens are renewed `DEFAULT_REFRESH_MARGIN` seconds early. For tokens without a
refresh token (app-only, client credentials) "refresh" means requesting a new one; the timing is
the same.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import Final

from tokenpost.tokens.state import Acquired

DEFAULT_REFRESH_MARGIN: Final = 600
"""Seconds before expiry at which a token is refreshed."""

USABLE_SKEW: Final = 30.0
"""Seconds before expiry after which a token is no longer sent (clocks differ, requests take
time)."""

RETRY_BASE: Final = 5.0
"""Back-off after the first transient refresh failure, in seconds; it doubles per failure."""

RETRY_CAP: Final = 900.0
"""The longest back-off, in seconds (15 minutes)."""

# 2**8 * RETRY_BASE already exceeds RETRY_CAP; bounding the exponent keeps the arithmetic small
# for any failure count.
_MAX_DOUBLINGS: Final = 16


def refresh_due_at(state: Acquired, margin: float) -> float:
    """When `state` should be refreshed (epoch seconds).

    `margin` seconds before expiry, but never before half the token's lifetime has passed, so a
    token shorter-lived than the margin is not refreshed in a loop; after a transient failure, not
    before `retry_at`.
    """
    lifetime = state.expires_at - state.obtained_at
    due = max(state.expires_at - margin, state.obtained_at + lifetime / 2)
    if state.retry_at is not None:
        due = max(due, state.retry_at)
    return due


def needs_refresh(state: Acquired, now: float, margin: float) -> bool:
    """True once `refresh_due_at` has come."""
    return now >= refresh_due_at(state, margin)


def is_usable(state: Acquired, now: float) -> bool:
    """True while the access token may still be sent: more than `USABLE_SKEW` before expiry."""
    return now < state.expires_at - USABLE_SKEW


def backoff_ceiling(failures: int) -> float:
    """The longest wait after `failures` earlier consecutive failures: 5 s doubling to 15 min.

    Raises:
        ValueError: `failures` is negative.
    """
    if failures < 0:
        raise ValueError("failures must be >= 0")
    return min(RETRY_CAP, RETRY_BASE * 2.0 ** min(failures, _MAX_DOUBLINGS))


def retry_delay(failures: int, *, random: Callable[[], float] = _random.random) -> float:
    """Seconds to wait before retrying a refresh that failed transiently.

    Args:
        failures: consecutive failures already recorded (`Acquired.failures`); 0 for the first.
        random: a source of floats in [0, 1); jitter spreads retries of many devices apart.

    Returns:
        A delay between 50 % and 100 % of `backoff_ceiling(failures)`.
    """
    ceiling = backoff_ceiling(failures)
    # Clamped so a bad random source cannot break the documented bounds.
    fraction = min(max(random(), 0.0), 1.0)
    return ceiling * (0.5 + 0.5 * fraction)
