"""PgFlightLock against a real PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth), in a
database made for this test session. Two `PgFlightLock`s stand for two hosts; each test names its
connections (``application_name``) so it can count them in ``pg_stat_activity``."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lock_support import assert_never_overlapped, run_workers, worker_script
from pg_support import PG_HOST, PG_PORT, fresh_database
from tokenpost.adapters.flight_lock import FileFlightLock
from tokenpost.adapters.pg_flight_lock import PgFlightLock
from tokenpost.errors import FlightLockBusyError, StoreError, UsageError

psycopg = pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")

PASSWORD = "hunter2-Pg-secret"

WORKER = worker_script("PgFlightLock(sys.argv[1])")

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from tokenpost.adapters.pg_flight_lock import PgFlightLock

    async def main():
        async with PgFlightLock(sys.argv[1]).hold("smtp"):
            print("held", flush=True)
            await asyncio.sleep(60)

    asyncio.run(main())
    """
)

# The advisory lock of one key in this database, split into granted and waiting entries. A bigint
# advisory key shows in pg_locks as classid (high half) and objid (low half), objsubid 1.
LOCK_ENTRIES = """
    SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted)
    FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)
"""


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this session, dropped afterwards; skip when there is no server."""
    with fresh_database("tokenpost_lock") as name:
        yield name


class Observer:
    """A separate session that looks at the locks and connections of the tested ones."""

    def __init__(self, conn: Any, database: str) -> None:
        self.conn = conn
        self.database = database

    def url(self, name: str, *, password: str = "") -> str:
        """A store URL whose connections show as application `name` (unique per test)."""
        auth = f"postgres:{password}" if password else "postgres"
        return (
            f"postgresql+psycopg://{auth}@{PG_HOST}:{PG_PORT}/{self.database}"
            f"?application_name={name}"
        )

    async def one(self, statement: str, params: tuple[object, ...] = ()) -> tuple[Any, ...]:
        row = await (await self.conn.execute(statement, params)).fetchone()
        assert row is not None
        return tuple(row)

    async def connections(self, name: str) -> int:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        return int((await self.one(query, (name,)))[0])

    async def lock_entries(self, key: str) -> tuple[int, int]:
        granted, waiting = await self.one(LOCK_ENTRIES, ("tokenpost:" + key,))
        return int(granted), int(waiting)

    async def eventually(self, check: Callable[[], Awaitable[bool]], *, within: float = 5) -> None:
        """Poll `check` until true: a closed session leaves pg_stat_activity a moment later."""
        async with asyncio.timeout(within):
            while not await check():
                await asyncio.sleep(0.01)


@pytest.fixture
async def pg(pg_database: str) -> AsyncIterator[Observer]:
    conn = await psycopg.AsyncConnection.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=pg_database, autocommit=True
    )
    async with conn:
        yield Observer(conn, pg_database)


@pytest.fixture
def app_names() -> Callable[[], str]:
    prefix = f"tp_{secrets.token_hex(4)}_"
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter)}"


# --- mutual exclusion -----------------------------------------------------------------------------


async def test_two_instances_never_overlap(pg: Observer, app_names: Callable[[], str]) -> None:
    hosts = [PgFlightLock(pg.url(app_names())), PgFlightLock(pg.url(app_names()))]
    inside = 0
    most = 0
    intervals: list[tuple[float, float, int]] = []

    async def worker(host: int) -> None:
        nonlocal inside, most
        for _ in range(4):
            async with hosts[host].hold("smtp"):
                inside += 1
                most = max(most, inside)
                start = time.monotonic()
                await asyncio.sleep(0.005)
                intervals.append((start, time.monotonic(), host))
                inside -= 1

    async with asyncio.timeout(20):
        await asyncio.gather(*(worker(host) for host in (0, 1, 0, 1)))
    assert most == 1
    assert len(intervals) == 16
    assert {host for *_, host in intervals} == {0, 1}
    intervals.sort()
    for (_, end, _), (next_start, _, _) in itertools.pairwise(intervals):
        assert end <= next_start


async def test_coroutines_of_one_instance_share_one_connection(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    name = app_names()
    lock = PgFlightLock(pg.url(name))
    seen: list[int] = []

    async def worker() -> None:
        async with lock.hold("smtp"):
            seen.append(await pg.connections(name))
            await asyncio.sleep(0.005)

    async with asyncio.timeout(10):
        await asyncio.gather(*(worker() for _ in range(5)))
    assert seen == [1] * 5
    await pg.eventually(lambda: _is(pg.connections(name), 0))


async def test_the_lock_is_the_namespaced_advisory_key(pg: Observer) -> None:
    """Operators and other tools can find the lock: hashtextextended('tokenpost:' || key, 0)."""
    lock = PgFlightLock(pg.url("tp_namespace"))
    try_lock = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
    async with lock.hold("pop:fax"):
        assert await pg.lock_entries("pop:fax") == (1, 0)
        assert await pg.one(try_lock, ("tokenpost:pop:fax",)) == (False,)
        assert await pg.one(try_lock, ("pop:fax",)) == (True,)
        await pg.one("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", ("pop:fax",))
    assert await pg.lock_entries("pop:fax") == (0, 0)


async def test_different_keys_do_not_wait_for_each_other(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    first = PgFlightLock(pg.url(app_names()))
    second = PgFlightLock(pg.url(app_names()))
    async with first.hold("smtp"), asyncio.timeout(5), second.hold("pop:fax"):
        assert await pg.lock_entries("smtp") == (1, 0)
        assert await pg.lock_entries("pop:fax") == (1, 0)


async def test_the_other_instance_waits_until_release(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    first = PgFlightLock(pg.url(app_names()))
    second = PgFlightLock(pg.url(app_names()))
    async with first.hold("smtp"):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3), second.hold("smtp"):
                pytest.fail("two holders at once")
    async with asyncio.timeout(2), second.hold("smtp"):
        pass


async def test_error_in_the_block_releases(pg: Observer, app_names: Callable[[], str]) -> None:
    name = app_names()
    lock = PgFlightLock(pg.url(name))
    with pytest.raises(RuntimeError, match="boom"):
        async with lock.hold("smtp"):
            raise RuntimeError("boom")
    assert await pg.lock_entries("smtp") == (0, 0)
    await pg.eventually(lambda: _is(pg.connections(name), 0))


async def test_a_given_local_lock_is_taken_first(
    pg: Observer, app_names: Callable[[], str], tmp_path: Path
) -> None:
    name = app_names()
    lock = PgFlightLock(pg.url(name), local=FileFlightLock(tmp_path), lock_timeout_s=0.3)
    async with FileFlightLock(tmp_path).hold("smtp"):
        with pytest.raises(FlightLockBusyError, match=r"smtp locked for 0\.3 s"):
            async with lock.hold("smtp"):
                pytest.fail("the local lock was not taken")
        assert await pg.connections(name) == 0
    async with asyncio.timeout(2), lock.hold("smtp"):
        assert await pg.lock_entries("smtp") == (1, 0)


# --- cancellation ---------------------------------------------------------------------------------


async def test_cancelling_a_waiter_leaves_nothing_behind(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    """A waiter cancelled inside pg_advisory_lock: no waiting entry, no connection, the holder
    keeps its lock."""
    holder_name, waiter_name = app_names(), app_names()
    holder = PgFlightLock(pg.url(holder_name))
    waiter = PgFlightLock(pg.url(waiter_name))
    got_it = False

    async def wait() -> None:
        nonlocal got_it
        async with waiter.hold("smtp"):
            got_it = True

    async with holder.hold("smtp"):
        task = asyncio.create_task(wait())
        await pg.eventually(lambda: _is(pg.lock_entries("smtp"), (1, 1)))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await pg.lock_entries("smtp") == (1, 0)
        await pg.eventually(lambda: _is(pg.connections(waiter_name), 0))
        assert await pg.connections(holder_name) == 1
    assert not got_it
    assert await pg.lock_entries("smtp") == (0, 0)
    async with asyncio.timeout(2), waiter.hold("smtp"):
        pass


async def test_cancelling_a_locally_queued_coroutine_leaves_the_queue_working(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    name = app_names()
    lock = PgFlightLock(pg.url(name))
    async with lock.hold("smtp"):
        queued = asyncio.create_task(_enter(lock))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert await pg.connections(name) == 1
    async with asyncio.timeout(2), lock.hold("smtp"):
        pass


async def test_cancelling_the_holder_releases(pg: Observer, app_names: Callable[[], str]) -> None:
    holder_name = app_names()
    holder = PgFlightLock(pg.url(holder_name))
    other = PgFlightLock(pg.url(app_names()))
    entered = asyncio.Event()

    async def hold() -> None:
        async with holder.hold("smtp"):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await entered.wait()
    acquired = asyncio.create_task(_enter(other))
    await pg.eventually(lambda: _is(pg.lock_entries("smtp"), (1, 1)))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(2):
        await acquired
    await pg.eventually(lambda: _is(pg.connections(holder_name), 0))
    assert await pg.lock_entries("smtp") == (0, 0)


# --- bounded waits and errors ---------------------------------------------------------------------


async def test_a_lock_not_free_in_time_raises_the_busy_error(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    waiter_name = app_names()
    holder = PgFlightLock(pg.url(app_names()))
    waiter = PgFlightLock(pg.url(waiter_name), lock_timeout_s=0.3)
    async with holder.hold("pop:fax"):
        started = time.monotonic()
        with pytest.raises(FlightLockBusyError, match=r"token of pop:fax locked for 0\.3 s"):
            async with waiter.hold("pop:fax"):
                pytest.fail("two holders at once")
        assert 0.25 <= time.monotonic() - started < 3
        assert await pg.lock_entries("pop:fax") == (1, 0)
        await pg.eventually(lambda: _is(pg.connections(waiter_name), 0))


async def test_the_wait_in_the_local_queue_counts_toward_the_timeout(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    lock = PgFlightLock(pg.url(app_names()), lock_timeout_s=0.3)
    async with lock.hold("smtp"):
        with pytest.raises(FlightLockBusyError, match=r"smtp locked for 0\.3 s"):
            async with lock.hold("smtp"):
                pytest.fail("two holders at once")


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    lock = PgFlightLock(f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/test")
    with pytest.raises(StoreError) as caught:
        async with lock.hold("smtp"):
            pytest.fail("locked without a server")
    message = str(caught.value)
    assert message.startswith(
        "the flight lock for smtp cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:1/test"
    )
    assert PASSWORD not in message


async def test_a_missing_database_is_a_store_error_without_the_password(pg: Observer) -> None:
    url = pg.url("tp_missing", password=PASSWORD).replace(pg.database, "tokenpost_no_such_db")
    with pytest.raises(StoreError, match="tokenpost_no_such_db") as caught:
        async with PgFlightLock(url).hold("smtp"):
            pytest.fail("locked without a database")
    assert PASSWORD not in str(caught.value)
    assert "***" in str(caught.value)


async def test_a_server_that_does_not_answer_is_bounded_by_the_timeout() -> None:
    """A listening socket that never speaks: the connect gives up at the lock timeout."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lock = PgFlightLock(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x", lock_timeout_s=0.3)
    async with server:
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"cannot connect to .*: timed out"):
            async with lock.hold("smtp"):
                pytest.fail("locked without a server")
        assert time.monotonic() - started < 3
        assert accepted, "the lock never reached the server"
        for writer in accepted:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize(
    "url",
    [
        f"sqlite+aiosqlite:///{PASSWORD}.db",
        f"postgresql+asyncpg://u:{PASSWORD}@h/db",
        f"not a url {PASSWORD}",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="postgresql\\+psycopg://") as caught:
        PgFlightLock(url)
    assert PASSWORD not in str(caught.value)


async def test_empty_key_is_refused() -> None:
    lock = PgFlightLock("postgresql+psycopg://postgres@127.0.0.1:1/test")
    with pytest.raises(ValueError, match="not empty"):
        async with lock.hold(""):
            pytest.fail("an empty key was locked")


def test_the_timeout_is_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        PgFlightLock("postgresql+psycopg://postgres@h/db", lock_timeout_s=0)


# --- processes ------------------------------------------------------------------------------------


async def test_two_processes_never_overlap(pg: Observer, tmp_path: Path) -> None:
    log = tmp_path / "log"
    rounds = 10
    await run_workers(WORKER, [[pg.url(f"tp_worker_{i}"), str(log), str(rounds)] for i in range(2)])
    assert_never_overlapped(log, processes=2, rounds=rounds)


async def test_lock_of_a_killed_process_is_released(pg: Observer) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, pg.url("tp_killed"), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    lock = PgFlightLock(pg.url("tp_survivor"))
    try:
        async with asyncio.timeout(30):
            assert await process.stdout.readline() == b"held\n"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3), lock.hold("smtp"):
                pytest.fail("the lock was free while another process held it")
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    async with asyncio.timeout(5), lock.hold("smtp"):
        pass


async def _enter(lock: PgFlightLock) -> None:
    async with lock.hold("smtp"):
        pass


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_a_timeout_of_one_hold_overrides_the_default(
    pg: Observer, app_names: Callable[[], str]
) -> None:
    holder = PgFlightLock(pg.url(app_names()))
    waiter = PgFlightLock(pg.url(app_names()), lock_timeout_s=60)
    async with holder.hold("smtp"):
        started = time.monotonic()
        with pytest.raises(FlightLockBusyError, match=r"smtp locked for 0\.5 s"):
            async with waiter.hold("smtp", timeout=0.5):
                pytest.fail("two holders at once")
        assert time.monotonic() - started < 10
    async with asyncio.timeout(5), waiter.hold("smtp", timeout=2):
        pass
