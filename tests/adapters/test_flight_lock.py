from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lock_support import assert_never_overlapped, run_workers, worker_script
from tokenpost.adapters.flight_lock import FileFlightLock, lock_file_name
from tokenpost.errors import FlightLockBusyError, StoreError
from tokenpost.i18n import translator

WORKER = worker_script("FileFlightLock(Path(sys.argv[1]))")

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tokenpost.adapters.flight_lock import FileFlightLock

    async def main():
        async with FileFlightLock(Path(sys.argv[1])).hold("smtp"):
            print("held", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("smtp", "smtp.lock"),
        ("pop:fax", "pop%3Afax.lock"),
        ("pop:a.b-c_d", "pop%3Aa.b-c_d.lock"),
        ("../etc/passwd", "..%2Fetc%2Fpasswd.lock"),
        (".", "..lock"),
        ("refresh smtp", "refresh%20smtp.lock"),
    ],
)
def test_lock_file_names(key: str, name: str) -> None:
    assert lock_file_name(key) == name


def test_long_keys_are_hashed_below_the_name_limit() -> None:
    name = lock_file_name("pop:" + "x" * 400)
    assert name.startswith("%sha256-")
    assert len(name) < 255
    assert name != lock_file_name("pop:" + "x" * 401)
    assert lock_file_name(name.removesuffix(".lock")) != name


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not empty"):
        lock_file_name("")


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_names_are_safe_and_distinct(a: str, b: str) -> None:
    name = lock_file_name(a)
    assert "/" not in name
    assert "\0" not in name
    assert name not in {".", ".."}
    if a != b:
        assert name != lock_file_name(b)


async def test_coroutines_take_turns_per_key(tmp_path: Path) -> None:
    lock = FileFlightLock(tmp_path / "locks")
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        async with lock.hold("smtp"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.002)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(10)))
    assert most == 1


async def test_different_keys_do_not_wait_for_each_other(tmp_path: Path) -> None:
    lock = FileFlightLock(tmp_path / "locks")
    async with lock.hold("smtp"), asyncio.timeout(1), lock.hold("pop:fax"):
        pass


async def test_two_instances_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = FileFlightLock(tmp_path)
    second = FileFlightLock(tmp_path)
    async with first.hold("smtp"):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), second.hold("smtp"):
                pytest.fail("two holders at once")
    async with asyncio.timeout(1), second.hold("smtp"):
        pass


async def test_lock_dir_is_created_private(tmp_path: Path) -> None:
    lock_dir = tmp_path / "home" / "locks"
    async with FileFlightLock(lock_dir).hold("pop:fax"):
        assert (lock_dir / "pop%3Afax.lock").exists()
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((lock_dir / "pop%3Afax.lock").stat().st_mode) == 0o600


async def test_error_in_the_block_releases(tmp_path: Path) -> None:
    lock = FileFlightLock(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        async with lock.hold("smtp"):
            raise RuntimeError("boom")
    async with asyncio.timeout(1), FileFlightLock(tmp_path).hold("smtp"):
        pass


async def test_cancelling_the_holder_releases(tmp_path: Path) -> None:
    lock = FileFlightLock(tmp_path)
    fds = open_fds()
    entered = asyncio.Event()

    async def holder() -> None:
        async with lock.hold("smtp"):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(holder())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert open_fds() == fds
    async with asyncio.timeout(1), FileFlightLock(tmp_path).hold("smtp"):
        pass


async def test_cancelling_a_waiter_leaves_nothing_behind(tmp_path: Path) -> None:
    """A waiter cancelled while polling the flock (held by another open file) never gets it."""
    other = FileFlightLock(tmp_path)
    lock = FileFlightLock(tmp_path)
    fds = open_fds()
    got_it = False

    async def waiter() -> None:
        nonlocal got_it
        async with lock.hold("smtp"):
            got_it = True

    async with other.hold("smtp"):
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.05)  # the waiter is polling now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not got_it
    assert open_fds() == fds
    async with asyncio.timeout(1), lock.hold("smtp"):
        pass


async def test_cancelling_a_queued_coroutine_leaves_the_queue_working(tmp_path: Path) -> None:
    lock = FileFlightLock(tmp_path)
    async with lock.hold("smtp"):
        queued = asyncio.create_task(_enter(lock))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    async with asyncio.timeout(1), lock.hold("smtp"):
        pass


async def _enter(lock: FileFlightLock) -> None:
    async with lock.hold("smtp"):
        pass


async def test_two_processes_never_overlap(tmp_path: Path) -> None:
    log = tmp_path / "log"
    rounds = 15
    await run_workers(WORKER, [[str(tmp_path / "locks"), str(log), str(rounds)]] * 2)
    assert_never_overlapped(log, processes=2, rounds=rounds)


async def test_lock_of_a_killed_process_is_released(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert await process.stdout.readline() == b"held\n"
        lock = FileFlightLock(tmp_path)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2), lock.hold("smtp"):
                pytest.fail("the lock was free while another process held it")
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    async with asyncio.timeout(2), lock.hold("smtp"):
        pass


# --- bounded waits --------------------------------------------------------------------------------


async def test_a_lock_held_by_another_process_is_busy_after_the_wait(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert await process.stdout.readline() == b"held\n"
        lock = FileFlightLock(tmp_path, lock_timeout_s=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(FlightLockBusyError) as caught:
            async with lock.hold("smtp"):
                pytest.fail("two holders at once")
        assert 0.25 <= loop.time() - started < 10
        message = str(caught.value)
        assert "another tokenpost process kept the token of smtp locked for 0.3 s" in message
        assert "make it writable" in message  # the fix
        assert isinstance(caught.value, StoreError)
        german = caught.value.translate(translator("de").gettext)
        assert "smtp" in german
        assert german != message
        # timeout=0: only when free now.
        started = loop.time()
        with pytest.raises(FlightLockBusyError, match="locked for 0 s"):
            async with lock.hold("smtp", timeout=0):
                pytest.fail("two holders at once")
        assert loop.time() - started < 5
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    async with asyncio.timeout(5), lock.hold("smtp", timeout=0):
        pass


async def test_the_queue_of_this_process_counts_toward_the_wait(tmp_path: Path) -> None:
    lock = FileFlightLock(tmp_path, lock_timeout_s=60)
    fds = open_fds()
    async with lock.hold("smtp"):
        with pytest.raises(FlightLockBusyError):
            async with asyncio.timeout(10), lock.hold("smtp", timeout=0.2):
                pytest.fail("two holders at once")
        with pytest.raises(FlightLockBusyError):
            async with lock.hold("smtp", timeout=0):
                pytest.fail("two holders at once")
    assert open_fds() == fds
    async with asyncio.timeout(1), lock.hold("smtp", timeout=0):
        pass


def test_a_negative_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        FileFlightLock(tmp_path, lock_timeout_s=-1)
