"""Lines from standard input while `token get` waits for a browser: the address a browser on
another device ended on, pasted by the administrator (`ports.LineSource`).

A daemon thread reads standard input's descriptor with `os.read` and hands complete lines to the
event loop, starting at the first `next_line()` (so a device flow never reads standard input).
Not asyncio's `connect_read_pipe`: it makes the descriptor non-blocking, and a terminal shares
that mode with standard output and error, whose writes could then fail. Not `asyncio.to_thread`:
the default executor's threads are joined at exit, and a read blocked on a terminal would keep the
process from ending. Not `sys.stdin`: a daemon thread blocked in its buffered reader holds a lock
the interpreter takes at shutdown.

Nothing read is logged or echoed here: a pasted address holds the code and the state.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from typing import Final

MAX_LINE_BYTES: Final = 16 * 1024  # far above a redirect's 8 KiB query limit
_CHUNK: Final = 4096


class StdinLines:
    """`ports.LineSource` over a file descriptor (standard input)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: asyncio.Queue[str | None] | None = None
        self._ended = False

    async def next_line(self) -> str | None:
        """The next line (without its line break), or None at the end of input."""
        if self._ended:
            return None
        if self._queue is None:
            self._queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            reader = threading.Thread(
                target=_read_lines,
                args=(self._fd, loop, self._queue),
                name="tokenpost-stdin",
                daemon=True,
            )
            reader.start()
        line = await self._queue.get()
        if line is None:
            self._ended = True
        return line


def stdin_lines() -> StdinLines | None:
    """Standard input as a line source, or None where nobody can paste or it cannot be read
    safely: there is none; it is no file (an in-process test runner); it is a device other than
    a terminal (/dev/null, as services get); or it is the terminal of a background job (a read
    would stop the whole process with SIGTTIN)."""
    stream = sys.stdin
    if stream is None:
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    if not os.isatty(fd):
        return None if stat.S_ISCHR(mode) else StdinLines(fd)
    try:
        if os.tcgetpgrp(fd) != os.getpgrp():
            return None
    except (AttributeError, OSError):  # no job control here
        return None
    return StdinLines(fd)


def _read_lines(fd: int, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """The reader thread: complete lines into `queue`, then None at the end of input. A line
    longer than MAX_LINE_BYTES is cut there (the rest up to its end is dropped): the cut line is
    refused as an address, and the next line starts clean."""

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            return False
        return True

    buffer = b""
    dropping = False
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except OSError:
            chunk = b""
        if not chunk:
            if buffer and not dropping:
                put(_decode(buffer))
            put(None)
            return
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            if not dropping and not put(_decode(line)):
                return
            dropping = False
        if len(buffer) > MAX_LINE_BYTES:
            if not dropping and not put(_decode(buffer[:MAX_LINE_BYTES])):
                return
            buffer, dropping = b"", True


def _decode(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")
