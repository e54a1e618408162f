"""Checking a flight lock across OS processes: workers log "S|E <pid> <ns>" around each
critical section; the log proves whether two of them were ever inside at once."""

from __future__ import annotations

import asyncio
import itertools
import sys
import textwrap
from pathlib import Path


def worker_script(make_lock: str) -> str:
    """A worker that takes the lock `make_lock` builds (a Python expression of `sys.argv[1]`)
    ROUNDS times and logs "S|E <pid> <monotonic ns>" around a short critical section; O_APPEND
    makes each line one atomic write. Arguments: LOCK_ARG LOG ROUNDS."""
    return textwrap.dedent(
        f"""
        import asyncio, os, sys, time
        from pathlib import Path
        from tokenpost.adapters.flight_lock import FileFlightLock
        from tokenpost.adapters.pg_flight_lock import PgFlightLock

        async def main(log, rounds):
            lock = {make_lock}
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            for _ in range(rounds):
                async with lock.hold("pop:fax"):
                    os.write(fd, f"S {{os.getpid()}} {{time.monotonic_ns()}}\\n".encode())
                    await asyncio.sleep(0.005)
                    os.write(fd, f"E {{os.getpid()}} {{time.monotonic_ns()}}\\n".encode())
                await asyncio.sleep(0)

        asyncio.run(main(sys.argv[2], int(sys.argv[3])))
        """
    )


async def run_workers(script: str, args_for: list[list[str]], timeout: float = 60) -> None:
    """Run `python -c script ARGS…` once per entry of `args_for`; all must exit 0."""
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, *args)
        for args in args_for
    ]
    async with asyncio.timeout(timeout):
        codes = [await process.wait() for process in processes]
    assert codes == [0] * len(processes)


def assert_never_overlapped(log: Path, *, processes: int, rounds: int) -> None:
    """Every entry is followed by its own exit, and no two sections share a moment."""
    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) == 2 * processes * rounds
    intervals = []
    for entry, leave in zip(lines[::2], lines[1::2], strict=True):
        assert entry[0] == "S"
        assert leave[0] == "E"
        assert entry[1] == leave[1], "another process entered before this one left"
        intervals.append((int(entry[2]), int(leave[2])))
    intervals.sort()
    for (_, end), (next_start, _) in itertools.pairwise(intervals):
        assert end <= next_start
    assert len({line[1] for line in lines}) == processes
