"""Lines pasted on standard input, read by a thread into the event loop (through a real pipe)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator

import pytest

from tokenpost.cli.pasted_lines import MAX_LINE_BYTES, StdinLines


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe; afterwards the write end is closed first, so that the reader thread sees the end
    and stops before its descriptor is closed (and its number perhaps reused)."""
    read_end, write_end = os.pipe()
    yield read_end, write_end
    with contextlib.suppress(OSError):
        os.close(write_end)
    for thread in threading.enumerate():
        if thread.name == "tokenpost-stdin":
            thread.join(timeout=10)
    os.close(read_end)


async def read_all(lines: StdinLines) -> list[str]:
    found: list[str] = []
    async with asyncio.timeout(10):
        while (line := await lines.next_line()) is not None:
            found.append(line)
    return found


async def test_lines_come_without_their_breaks_then_the_end(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, b"http://localhost:1/?code=a\r\n\nsecond\xff line\nlast without break")
    os.close(write_end)
    lines = StdinLines(read_end)

    assert await read_all(lines) == [
        "http://localhost:1/?code=a",
        "",
        "second\ufffd line",
        "last without break",
    ]
    assert await lines.next_line() is None  # and stays ended


async def test_a_line_arriving_in_pieces_is_one_line(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    lines = StdinLines(read_end)
    waiting = asyncio.create_task(lines.next_line())
    os.write(write_end, b"http://local")
    await asyncio.sleep(0.05)
    assert not waiting.done()
    os.write(write_end, b"host:1/\n")

    async with asyncio.timeout(10):
        assert await waiting == "http://localhost:1/"


async def test_a_cancelled_wait_loses_no_line(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    lines = StdinLines(read_end)
    waiting = asyncio.create_task(lines.next_line())
    await asyncio.sleep(0.01)
    waiting.cancel()
    os.write(write_end, b"kept\n")

    async with asyncio.timeout(10):
        assert await lines.next_line() == "kept"


async def test_an_endless_line_is_cut_and_the_next_line_starts_clean(
    pipe: tuple[int, int],
) -> None:
    read_end, write_end = pipe
    lines = StdinLines(read_end)
    writer = asyncio.get_running_loop().run_in_executor(
        None, os.write, write_end, b"x" * (3 * MAX_LINE_BYTES) + b"\nnext\n"
    )

    async with asyncio.timeout(10):
        first = await lines.next_line()
        second = await lines.next_line()
    await writer

    assert first == "x" * MAX_LINE_BYTES
    assert second == "next"
