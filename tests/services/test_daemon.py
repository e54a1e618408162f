"""The serve daemon's loops: they outlive a failing pass, and stop gracefully."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fakes import FakeClock, MemoryStore
from tokenpost.services.daemon import Daemon


class FlakyScheduler:
    """Fails its first pass, then counts passes."""

    def __init__(self) -> None:
        self.passes = 0

    async def tick(self) -> float:
        self.passes += 1
        if self.passes == 1:
            raise RuntimeError("a broken pass")
        return 0.01


class SlowReceiver:
    """A receive run that takes a while: the daemon must let it finish on stop."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = False

    async def run_due(self, *, allow_plaintext: bool = False) -> float | None:
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
        MemoryStore(),
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
