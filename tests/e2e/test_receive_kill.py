"""kill -9 at random moments of `tokenpost receive` against Dovecot: no message is lost and none
arrives twice (DESIGN invariant 4).

Each round starts the installed command as a subprocess and SIGKILLs it after a random delay
(seeded): a quarter during start-up, the rest once a random number of messages has arrived plus
a few random milliseconds, so most kills land while messages are being fetched, stored and
deleted. New messages arrive between rounds, so every round has work in flight. A last
undisturbed run must then leave every message in the folder exactly once (by Message-ID) and
Dovecot's maildir empty, or, leaving mail on the server, every message still there and none
fetched again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import ACCOUNT, Cli
from test_receive_dovecot import message, message_ids, oauth_pop

from dovecot_support import Dovecot
from sandbox_support import Sandbox
from tokenpost.adapters.maildir import key_of, ledger_name

pytestmark = pytest.mark.slow

INITIAL = 30
ROUNDS = 30
PER_ROUND = 3
PADDING = b"x" * 998 + b"\r\n"


def big_message(n: int) -> bytes:
    return message(n) + PADDING * 40  # ~40 KB: RETR and fsync take a noticeable time


def timed_run(cli: Cli) -> float:
    started = time.monotonic()
    cli.ok("receive")
    return time.monotonic() - started


def delivered_count(folder: Path) -> int:
    return sum(len(os.listdir(folder / sub)) for sub in ("new", "cur") if (folder / sub).is_dir())


def kill_at_random(
    process: subprocess.Popen[bytes], folder: Path, rng: random.Random, startup: float, pending: int
) -> None:
    """Kill during start-up (one round in four), or once a random number of the pending
    messages has arrived, plus a random few milliseconds: anywhere within a message's RETR,
    fsync, rename, DELE, the sync of the folder and ledger, or the QUIT."""
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0.3 * startup, startup))
    else:
        target = delivered_count(folder) + rng.randint(0, pending - 1)
        deadline = time.monotonic() + startup + 30
        while process.poll() is None and time.monotonic() < deadline:
            if delivered_count(folder) >= target:
                break
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.015))
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def left_to_heal(folder: Path, dovecot: Dovecot, added: int, *, leave_on_server: bool) -> bool:
    """Whether a kill left work for the next run: a partial file in tmp/, a stored message not
    yet in the ledger, or (deleting) a stored message still on the server."""
    if not (folder / "tmp").is_dir():
        return False
    ledger = folder / ledger_name("pop:fax")
    recorded = (
        {line.split(" ")[0] for line in ledger.read_text().splitlines()}
        if ledger.exists()
        else set()
    )
    stored = {key_of(name) for sub in ("new", "cur") for name in os.listdir(folder / sub)}
    undeleted = dovecot.maildir_count(ACCOUNT) > added - delivered_count(folder)
    return (
        bool(os.listdir(folder / "tmp"))
        or bool(stored - recorded)
        or (undeleted and not leave_on_server)
    )


def killed_rounds(
    cli: Cli, dovecot: Dovecot, folder: Path, rng: random.Random, startup: float, *, leave: bool
) -> tuple[int, int]:
    """Returns (kills, kills that left work for the next run)."""
    kills = unfinished = 0
    for round_number in range(ROUNDS):
        for i in range(PER_ROUND):
            dovecot.add_message(ACCOUNT, big_message(INITIAL + round_number * PER_ROUND + i))
        added = INITIAL + (round_number + 1) * PER_ROUND
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", "receive"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=cli.env(),
        )
        kill_at_random(process, folder, rng, startup, added - delivered_count(folder))
        if process.returncode == -signal.SIGKILL:
            kills += 1
            unfinished += left_to_heal(folder, dovecot, added, leave_on_server=leave)
    return kills, unfinished


@pytest.mark.parametrize("leave_on_server", [False, True], ids=["delete", "leave"])
def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path, leave_on_server: bool
) -> None:
    folder = tmp_path / "fax"
    extra = ("--leave-on-server",) if leave_on_server else ()
    oauth_pop(cli, sandbox, dovecot_peer, folder, *extra)
    startup = timed_run(cli)
    for n in range(INITIAL):
        dovecot_peer.add_message(ACCOUNT, big_message(n))
    rng = random.Random(20261127 + leave_on_server)

    kills, unfinished = killed_rounds(
        cli, dovecot_peer, folder, rng, startup, leave=leave_on_server
    )
    final = json.loads(cli.ok("receive", "--json"))

    total = INITIAL + ROUNDS * PER_ROUND
    print(f"kills={kills} unfinished={unfinished} startup={startup:.2f}s final={final}")
    # The test must have exercised crash recovery, whatever the machine's speed: kills that
    # landed mid-work are timing-dependent, so the floor is low but never zero.
    assert kills >= ROUNDS // 3
    assert unfinished >= 3, "too few kills landed while messages were being received"
    assert message_ids(folder) == sorted(f"<fax-{n}@example.test>" for n in range(total))
    assert dovecot_peer.maildir_count(ACCOUNT) == (total if leave_on_server else 0)
    again = json.loads(cli.ok("receive", "--json"))["settings"][0]
    assert again["fetched"] == 0
    assert again["skipped"] == (total if leave_on_server else 0)
    assert list((folder / "tmp").iterdir()) == []
