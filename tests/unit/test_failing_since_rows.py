"""`Acquired.failing_since` in stored rows: kept through the codec, defaulted for older rows."""

from __future__ import annotations

from tokenpost.adapters import store_codec as codec
from tokenpost.secret import Secret
from tokenpost.text import Text
from tokenpost.tokens.machine import RefreshFailed, apply
from tokenpost.tokens.state import Acquired

FAILING_ROW = Acquired(
    access_token=Secret("ACCESS"),
    expires_at=1_700_003_600.0,
    obtained_at=1_700_000_000.0,
    refresh_token=Secret("REFRESH"),
    failures=1,
    retry_at=1_700_000_100.0,
    last_error=Text.verbatim("HTTP 503"),
    failing_since=1_700_000_050.0,
)


def test_failing_since_round_trips_through_the_codec() -> None:
    public, secrets = codec.encode_state(FAILING_ROW)
    assert public["failing_since"] == 1_700_000_050.0
    assert codec.decode_state(public, secrets) == FAILING_ROW


def test_a_row_written_before_failing_since_reads_as_not_failing_and_starts_a_run() -> None:
    public, secrets = codec.encode_state(FAILING_ROW)
    del public["failing_since"]
    old = codec.decode_state(public, secrets)
    assert isinstance(old, Acquired)
    assert old.failing_since is None
    assert old.failures == 1
    after = apply(
        old, RefreshFailed(Text.verbatim("timeout"), retry_at=1_700_000_300.0, now=1_700_000_200.0)
    )
    assert isinstance(after, Acquired)
    assert after.failing_since == 1_700_000_200.0
