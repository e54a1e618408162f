"""A home whose disk is full during a refresh: the rotated grant is held in memory and used, the
old refresh token is never presented again (the sandbox rotates and revokes on reuse), mail goes
on, `store_unwritable` fires once, and once there is space the grant is stored for every process.

The home is a small tmpfs filled to the last page: a store that really refuses writes (root
ignores file modes, so a read-only file would not refuse anything). Skipped where mounting is
not allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens
from test_send_command import configure_sandbox_smtp

from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox

pytestmark = pytest.mark.slow

LIFETIME = 3600
MARGIN = 600


class ShiftedClock:
    """The real clock, moved forward on demand: due times come without waiting for them (the
    providers and mail servers keep their own, real, time)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def now(self) -> float:
        return time.time() + self.shift

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tokenpost-test", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_never_loses_the_rotated_grant(
    small_home: Path, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    cli = Cli(small_home)
    sandbox.control.config(device_interval=0, access_token_lifetime=LIFETIME)
    cli.add_sandbox_provider(sandbox)
    configure_sandbox_smtp(cli, smtp_peer)
    acquire_by_device_flow(cli, sandbox)
    events: list[tuple[str, str, str]] = []

    async def scenario() -> str:
        from tokenpost.wiring import open_app

        clock = ShiftedClock()
        env = cli.env()
        async with open_app(
            small_home, env, clock=clock, on_event=lambda *e: events.append(e)
        ) as app:
            app.refresher.margin = MARGIN
            before = await app.refresher.access_token("smtp")  # opens the store's files
            filler = fill(small_home)

            def refreshes() -> int:
                return sandbox.control.stats().grants_by_type.get("refresh_token", 0)

            # First due time: one refresh; the store refuses the grant, which is held.
            clock.shift = LIFETIME - MARGIN + 1
            first = await asyncio.gather(*(app.refresher.access_token("smtp") for _ in range(20)))
            assert {t.reveal() for t in first} != {before.reveal()}
            assert len({t.reveal() for t in first}) == 1
            assert refreshes() == 1
            assert app.refresher.held_state("smtp") is not None
            # Mail goes on with the held token.
            await app.send_alert(["ops@example.test"], "held token", "sent while the disk is full")
            assert len(smtp_peer.messages()) == 1
            for _ in range(10):
                await app.refresher.access_token("smtp")
            assert refreshes() == 1  # nothing more until the next due time

            # Second due time: refreshed with the held grant's own refresh token, held again.
            clock.shift += LIFETIME - MARGIN + 1
            second = await app.refresher.access_token("smtp")
            assert second != first[0]
            assert refreshes() == 2
            stats = sandbox.control.stats()
            assert stats.refresh_replays == 0
            assert stats.revoked == ()
            await app.send_alert(["ops@example.test"], "held again", "still full")
            assert len(smtp_peer.messages()) == 2

            # Space again: the held grant is written, without asking the provider.
            filler.unlink()
            await app.refresher.write_held()
            assert app.refresher.held_state("smtp") is None
            assert refreshes() == 2
            return second.reveal()

    held = asyncio.run(scenario())
    assert [e[:2] for e in events if e[0] == "store_unwritable"] == [("store_unwritable", "smtp")]
    [(_event, _setting, detail)] = [e for e in events if e[0] == "store_unwritable"]
    assert "full" in str(detail)
    # A new process sees the grant that was held: `token show` prints the same access token.
    shown = cli.run("token", "show", "smtp")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == held + "\n"
    assert cli.status()["smtp"]["state"] == "acquired"
    stats = sandbox.control.stats()
    assert stats.refresh_replays == 0
    assert stats.revoked == ()
    cli.outputs.remove(shown.stdout)  # the one place a token is meant to appear
    assert leaked_tokens_outside_the_store(cli) == []


def leaked_tokens_outside_the_store(cli: Cli) -> list[str]:
    """`leaked_tokens` without the store files (the store holds tokens encrypted; a tmpfs
    home may still hold the filler's pages)."""
    return [place for place in leaked_tokens(cli) if not place.startswith(str(cli.home))]


KEEP_OPEN = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
print("open", flush=True)
time.sleep(600)
"""


def test_a_command_that_ends_with_an_unsaved_grant_says_so(
    small_home: Path, sandbox: Sandbox
) -> None:
    cli = Cli(small_home)
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    acquire_by_device_flow(cli, sandbox)
    with contextlib.ExitStack() as cleanup:
        # SQLite's -wal and -shm files exist only while a process has the store open, and a
        # full disk has no room to create them: a reader keeps them, as `serve` would.
        reader = subprocess.Popen(
            [sys.executable, "-c", KEEP_OPEN, str(small_home / "tokenpost.db")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        cleanup.callback(reader.stdout.close)
        cleanup.callback(reader.wait)
        cleanup.callback(reader.kill)
        assert reader.stdout.readline() == "open\n"
        filler = fill(small_home)
        cleanup.callback(filler.unlink)
        started = time.monotonic()
        result = cli.run("token", "refresh", "smtp", timeout=120)
        took = time.monotonic() - started
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "could not be saved" in result.stderr
    assert "Free space in the home or make the store writable" in result.stderr
    assert "tokenpost token get smtp" in result.stderr
    assert "Traceback" not in result.stderr
    assert took < 60
    assert sandbox.control.stats().grants_by_type.get("refresh_token", 0) == 1
    assert ACCOUNT not in result.stdout
    assert "sbx_at_" not in result.stderr + result.stdout
    assert "sbx_rt_" not in result.stderr + result.stdout
    assert os.path.exists(small_home / "tokenpost.db")
