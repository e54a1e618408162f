"""`ports.CommandRunner` on asyncio subprocesses: the per-message command and the alert hook.

The command runs without a shell (argv as given), with stdin closed and in its own process
group, so a timeout kills it together with whatever it started. Combined stdout and stderr are
kept as they arrive, but only their last `tail_bytes`: a chatty command costs bounded memory.

The command is done when its own process exits. A background child it left behind may hold the
output pipe open for as long as it likes; its output is read for a short grace period only, then
the pipe is closed on our side (the child lives on: it is the command's business).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Final

from tokenpost.errors import OperationError
from tokenpost.ports import CommandResult

DEFAULT_TAIL_BYTES: Final = 4096
_OUTPUT_GRACE_S: Final = 1.0  # after the exit: output still in the pipe
_REAP_TIMEOUT_S: Final = 5.0  # after SIGKILL


class _TailProtocol(asyncio.SubprocessProtocol):
    """Keeps the tail of the output; resolves `exited` at the process's exit and `drained` when
    the output pipe closes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tail_bytes: int) -> None:
        self.tail = bytearray()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._tail_bytes = tail_bytes

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        self.tail.extend(data)
        if len(self.tail) > self._tail_bytes:
            del self.tail[: len(self.tail) - self._tail_bytes]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class SubprocessRunner:
    """Runs a command to completion or to its timeout; see `ports.CommandRunner`."""

    def __init__(self, *, tail_bytes: int = DEFAULT_TAIL_BYTES) -> None:
        self._tail_bytes = tail_bytes

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,  # noqa: ASYNC109 - the port's contract: a timeout per command
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run `argv`; `returncode` None when it was killed at `timeout` seconds.

        Raises:
            OperationError: the command could not be started (empty, not found, not executable).
        """
        if not argv:
            raise OperationError("the command is empty: give the program to run")
        transport, protocol = await self._start(argv, env)
        try:
            killed = not await _wait(protocol.exited, timeout)
            if killed:
                await _kill(transport, protocol)
            await _wait(protocol.drained, _OUTPUT_GRACE_S)
            returncode = None if killed else transport.get_returncode()
        finally:
            if transport.get_returncode() is None:  # cancelled: leave nothing running
                await asyncio.shield(_kill(transport, protocol))
            transport.close()
        return CommandResult(returncode, protocol.tail.decode("utf-8", "replace"))

    async def _start(
        self, argv: Sequence[str], env: Mapping[str, str] | None
    ) -> tuple[asyncio.SubprocessTransport, _TailProtocol]:
        loop = asyncio.get_running_loop()
        full_env = {**os.environ, **env} if env else None
        try:
            return await loop.subprocess_exec(
                lambda: _TailProtocol(loop, self._tail_bytes),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        except OSError as error:
            # The program's name only: arguments may hold paths or details not ours to show.
            reason = error.strerror or type(error).__name__
            raise OperationError(
                "cannot run {program!r}: {reason}. Check that the program is installed and"
                " executable, and that it is an absolute path or found in PATH.",
                program=os.path.basename(argv[0]),
                reason=reason,
            ) from None


async def _wait(future: asyncio.Future[None], timeout: float) -> bool:  # noqa: ASYNC109
    """Wait for `future` up to `timeout` seconds (it is not cancelled); True when done."""
    done, _ = await asyncio.wait([future], timeout=timeout)
    return bool(done)


async def _kill(transport: asyncio.SubprocessTransport, protocol: _TailProtocol) -> None:
    """SIGKILL the command's process group and wait for its exit."""
    pid = transport.get_pid()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        transport.kill()
    await _wait(protocol.exited, _REAP_TIMEOUT_S)
