"""The serve daemon's loops (they outlive a failing pass, and stop gracefully) and its health
lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any

import pytest

from fakes import FakeClock, FakeOwners, MemoryStore
from tokenpost.i18n import translator
from tokenpost.logs import JsonLinesFormatter, RedactingFilter, TranslatingFilter
from tokenpost.services.daemon import Daemon, log_health
from tokenpost.services.status import SettingStatus
from tokenpost.services.status_cache import StatusCache
from tokenpost.settings.model import AuthMethod
from tokenpost.text import Gettext
from tokenpost.tokens.state_id import StateId


class FlakyScheduler:
    """Fails its first pass, then counts passes."""

    def __init__(self) -> None:
        self.passes = 0
        self.wakeup = asyncio.Event()

    async def tick(self, stop: asyncio.Event | None = None) -> float:
        self.passes += 1
        if self.passes == 1:
            raise RuntimeError("a broken pass")
        return 0.01


class SlowReceiver:
    """A receive run that takes a while: the daemon must let it finish on stop."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = False

    async def run_due(
        self,
        settings: list[object] | None = None,
        *,
        allow_plaintext: bool = False,
        stop: asyncio.Event | None = None,
    ) -> float | None:
        self.started.set()
        await asyncio.sleep(0.2)
        self.finished = True
        return None

    def due_at(self, setting: object) -> float:
        return 0.0


class IdleAlerter:
    def __init__(self) -> None:
        self.stopped = False

    async def run(self, stop: asyncio.Event | None = None) -> None:
        assert stop is not None
        await stop.wait()
        self.stopped = True


def daemon_of(scheduler: object, receiver: object, alerter: object, grace: float) -> Daemon:
    return Daemon(
        StatusCache(MemoryStore(), FakeOwners()),
        FakeClock(),
        scheduler,  # type: ignore[arg-type]
        receiver,  # type: ignore[arg-type]
        alerter,  # type: ignore[arg-type]
        grace=grace,
        retry_after_failure=0.01,
    )


async def test_a_failing_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler, receiver, alerter = FlakyScheduler(), SlowReceiver(), IdleAlerter()
    daemon = daemon_of(scheduler, receiver, alerter, grace=5)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="tokenpost.serve"):
        task = asyncio.create_task(daemon.run(stop))
        async with asyncio.timeout(5):
            while scheduler.passes < 3:
                await asyncio.sleep(0.01)
        stop.set()
        await task
    assert [r.getMessage() for r in caplog.records] == [
        "the tokens loop failed; retrying in 0.01 s"
    ]
    assert alerter.stopped


async def test_stop_lets_work_in_flight_finish_within_the_grace() -> None:
    receiver, alerter = SlowReceiver(), IdleAlerter()
    daemon = daemon_of(FlakyScheduler(), receiver, alerter, grace=5)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await receiver.started.wait()
    stop.set()
    await task
    assert receiver.finished


async def test_work_outlasting_the_grace_is_cancelled() -> None:
    receiver, alerter = SlowReceiver(), IdleAlerter()
    daemon = daemon_of(FlakyScheduler(), receiver, alerter, grace=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await receiver.started.wait()
    stop.set()
    async with asyncio.timeout(1):
        await task
    assert not receiver.finished


# -- health lines ------------------------------------------------------------------------------


def json_lines_of(logger: str, gettext: Gettext) -> tuple[logging.Handler, io.StringIO]:
    """A handler set up as `serve --log-format json` sets up its own, writing to a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    formatter = JsonLinesFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(TranslatingFilter(gettext))
    handler.addFilter(RedactingFilter())
    log = logging.getLogger(logger)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler, out


def health_line(row: SettingStatus, next_check: float | None, lang: str) -> dict[str, Any]:
    handler, out = json_lines_of("tokenpost.serve", translator(lang).gettext)
    try:
        log_health(row, next_check)
    finally:
        logging.getLogger("tokenpost.serve").removeHandler(handler)
    [line] = out.getvalue().splitlines()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


ACQUIRED = SettingStatus(
    "pop:fax",
    AuthMethod.OAUTH2,
    "fax@example.test",
    "sbx",
    StateId.ACQUIRED,
    expires_at=1_800_000_000.9,
    reason="HTTP 503",
    failures=2,
)


def test_health_times_are_iso_8601_utc_like_token_status() -> None:
    line = health_line(ACQUIRED, 1_800_000_300.0, "en")
    assert line["setting"] == "pop:fax"
    assert line["state"] == "acquired"
    assert line["expires_at"] == "2027-01-15T08:00:00Z"
    assert line["next_check"] == "2027-01-15T08:05:00Z"
    assert line["msg"] == (
        "health pop:fax: Acquired; expires 2027-01-15T08:00:00Z; "
        "next check 2027-01-15T08:05:00Z; refresh failures: 2; HTTP 503"
    )


def test_health_line_in_german_keeps_the_fields() -> None:
    line = health_line(ACQUIRED, None, "de")
    assert line["msg"].startswith("Zustand pop:fax: Abgerufen; läuft ab 2027-01-15T08:00:00Z")
    assert "fehlgeschlagene Aktualisierungen: 2" in line["msg"]
    assert (line["state"], line["expires_at"]) == ("acquired", "2027-01-15T08:00:00Z")
    assert "next_check" not in line


def test_a_setting_without_oauth_shows_its_method() -> None:
    row = SettingStatus("smtp", AuthMethod.PASSWORD, "scan@example.test", None, None)
    line = health_line(row, None, "en")
    assert (line["msg"], line["state"]) == ("health smtp: auth=password", "auth=password")
    assert "expires_at" not in line


def test_without_tokenpost_s_log_set_up_the_health_line_is_english(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="tokenpost.serve"):
        log_health(ACQUIRED, None)
    [record] = caplog.records
    assert record.getMessage().startswith("health pop:fax: Acquired; expires 2027-01-15")
