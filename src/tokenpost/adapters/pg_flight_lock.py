"""One refresh or authorization in flight per token (DESIGN invariant 1) across tokenpost
instances on different hosts that share one PostgreSQL store.

Theory of operation:

- `hold(key)` first takes a local lock for the key (by default an `asyncio.Lock` per key; pass
  a `FileFlightLock` to make the processes of one host queue on it too), so coroutines queue
  locally and a process (or host) opens at most one connection per key.
- Then it opens a dedicated autocommit connection and takes the session-level advisory lock
  ``pg_advisory_lock(hashtextextended('tokenpost:' || key, 0))``. The lock belongs to that
  session: leaving the block unlocks and closes the connection, and a session that ends for any
  reason (close, crash, SIGKILL, network loss) loses its lock, so no holder can outlive its
  process. For the same reason the connection must reach PostgreSQL directly or through a
  session-pooling proxy: a transaction pooler (PgBouncer ``pool_mode=transaction``) breaks
  session locks.
- Every wait is bounded by `lock_timeout_s` (or the `timeout` of one `hold`), counted from the
  call: the local queue, the connect, and the advisory lock (on the server with
  ``lock_timeout``, backed by a client-side timeout). Past it, FlightLockBusyError names the key
  (an unreachable server is a StoreError).
- Cancellation is safe at every point: a waiter cancelled inside ``pg_advisory_lock`` has its
  query cancelled by psycopg, and its connection is closed whatever the query's outcome, so a
  lock granted in the same instant dies with the session.
- A connection lost inside the block loses the lock silently; the store's compare-and-set on
  the token version still keeps the writes apart.

Connection parameters come from SQLAlchemy's psycopg dialect, so the lock connects exactly as
the store does (the same host list, user, database and libpq options from the URL query).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import psycopg
import sqlalchemy as sa

from tokenpost.errors import FlightLockBusyError, StoreError, UsageError
from tokenpost.secret import REDACTED, Secret

if TYPE_CHECKING:
    from tokenpost.ports import FlightLock

LOCK_TIMEOUT_S: Final = 30.0
KEY_PREFIX: Final = "tokenpost:"
APPLICATION_NAME: Final = "tokenpost flight lock"
_CLIENT_GRACE_S: Final = 5.0  # the server's lock_timeout fires first; this covers a dead server
_RELEASE_TIMEOUT_S: Final = 5.0
_DRIVERS: Final = frozenset({"postgresql", "postgresql+psycopg"})
_SET_LOCK_TIMEOUT: Final = "SELECT set_config('lock_timeout', %s, false)"
_LOCK: Final = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"


class PgFlightLock:
    """`ports.FlightLock` on PostgreSQL session advisory locks, one connection per held key."""

    def __init__(
        self,
        url: str,
        *,
        local: FlightLock | None = None,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> None:
        """
        Args:
            url: the store's SQLAlchemy URL, ``postgresql+psycopg://user@host/db``.
            local: taken before the advisory lock; None is an `asyncio.Lock` per key.
            lock_timeout_s: the longest `hold` waits for the lock, all steps together.

        Raises:
            UsageError: the URL is not a PostgreSQL URL.
        """
        if not lock_timeout_s > 0:
            raise ValueError("lock_timeout_s must be positive")
        target = _parse_url(url)
        self._where = target.render_as_string(hide_password=True)
        params: dict[str, Any] = dict(target.get_dialect()().create_connect_args(target)[1])
        password = params.pop("password", None)
        self._password = None if password is None else Secret(str(password))
        params.setdefault("application_name", APPLICATION_NAME)
        self._params = params
        self._local: FlightLock = local if local is not None else _ProcessLocks()
        self._timeout_s = lock_timeout_s

    @contextlib.asynccontextmanager
    async def hold(
        self,
        key: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[None]:
        """Hold the lock for `key` until the block exits, normally, by error or by cancellation.

        Args:
            timeout: the longest wait in seconds, all steps together; None is `lock_timeout_s`.

        Raises:
            FlightLockBusyError: the lock was not free within the wait.
            StoreError: PostgreSQL cannot be reached or refused the lock.
        """
        if not key:
            raise ValueError("a flight lock key is not empty")
        limit = self._timeout_s if timeout is None else max(0.0, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        async with contextlib.AsyncExitStack() as stack:
            async with _within(deadline, lambda: self._busy(key, limit)):
                local = self._local.hold(key, timeout=max(0.0, deadline - loop.time()))
                await stack.enter_async_context(local)
            conn = await self._connect(key, deadline)
            try:
                await self._lock(conn, key, deadline, limit)
            except BaseException:
                # Also on cancellation: a lock granted as the cancel arrived ends with the session.
                await conn.close()
                raise
            try:
                yield
            finally:
                await _release(conn, key)

    async def _connect(self, key: str, deadline: float) -> psycopg.AsyncConnection[Any]:
        params = dict(self._params)
        if self._password is not None:
            params["password"] = self._password.reveal()
        try:
            async with _within(deadline, lambda: self._unreachable(key, "timed out")):
                return await psycopg.AsyncConnection.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise self._unreachable(key, self._detail(exc)) from exc

    async def _lock(
        self, conn: psycopg.AsyncConnection[Any], key: str, deadline: float, limit: float
    ) -> None:
        remaining_ms = math.ceil((deadline - asyncio.get_running_loop().time()) * 1000)
        if remaining_ms <= 0:
            raise self._busy(key, limit)
        try:
            async with _within(deadline + _CLIENT_GRACE_S, lambda: self._busy(key, limit)):
                # 0 would mean no limit; the server checks this bound while it waits.
                await conn.execute(_SET_LOCK_TIMEOUT, (f"{remaining_ms}ms",))
                await conn.execute(_LOCK, (KEY_PREFIX + key,))
        except psycopg.errors.LockNotAvailable:
            raise self._busy(key, limit) from None
        except psycopg.Error as exc:
            raise StoreError(
                "the flight lock for {key} failed on {where}: {detail}",
                key=key,
                where=self._where,
                detail=self._detail(exc),
            ) from exc

    def _busy(self, key: str, waited: float) -> FlightLockBusyError:
        return FlightLockBusyError(
            "another tokenpost process or instance on {where} kept the token of {setting}"
            " locked for {seconds} s, perhaps because it cannot write the store and holds a new"
            " token until it can: if the store is full or read-only, make it writable (that"
            " process then saves the token and lets go); otherwise try again later",
            where=self._where,
            setting=key,
            seconds=format(waited, "g"),
        )

    def _unreachable(self, key: str, detail: str) -> StoreError:
        return StoreError(
            "the flight lock for {key} cannot connect to {where}: {detail}",
            key=key,
            where=self._where,
            detail=detail,
        )

    def _detail(self, exc: psycopg.Error) -> str:
        """The driver's first line, with the password blotted out should libpq ever echo it."""
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        if self._password is not None and self._password.reveal():
            detail = detail.replace(self._password.reveal(), REDACTED)
        return detail


class _ProcessLocks:
    """The default local lock: an `asyncio.Lock` per key, for the coroutines of one process."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(
        self,
        key: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - PgFlightLock bounds the wait
    ) -> AsyncIterator[None]:
        del timeout
        async with self._locks.setdefault(key, asyncio.Lock()):
            yield


def _parse_url(url: str) -> sa.URL:
    """Raises UsageError for anything but a PostgreSQL URL for psycopg."""
    try:
        target = sa.make_url(url)
    except sa.exc.ArgumentError:
        target = None
    if target is None or target.drivername not in _DRIVERS:
        raise UsageError("flight lock URL: must start with postgresql+psycopg://") from None
    return target.set(drivername="postgresql+psycopg")


@contextlib.asynccontextmanager
async def _within(deadline: float, error: Callable[[], StoreError]) -> AsyncIterator[None]:
    """Bound the block by `deadline` (event-loop time); on expiry raise `error()`."""
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            yield
    except TimeoutError:
        if not timeout.expired():
            raise
        raise error() from None


async def _release(conn: psycopg.AsyncConnection[Any], key: str) -> None:
    """Unlock, then close. Closing ends the session and so drops the lock on its own; the
    explicit unlock makes the lock free before `hold` returns, when the server answers."""
    try:
        with contextlib.suppress(psycopg.Error, TimeoutError):
            async with asyncio.timeout(_RELEASE_TIMEOUT_S):
                await conn.execute(_UNLOCK, (KEY_PREFIX + key,))
    finally:
        await conn.close()


if TYPE_CHECKING:

    def _implements_flight_lock(lock: PgFlightLock) -> FlightLock:  # checked by mypy
        return lock
