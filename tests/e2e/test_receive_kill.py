"""kill -9 at random moments of `tokenpost receive` against Dovecot: no message is lost and none
arrives twice (DESIGN invariant 4).

Each round starts the installed command as a subprocess and SIGKILLs it after a random delay
(seeded): a quarter during start-up, half once a random number of messages has arrived, a
quarter once the commands of a random number of messages have run, plus a few random
milliseconds, so most kills land while messages are being fetched, stored and deleted, or while
their commands run. New messages arrive between rounds, so every round has
work in flight. A last undisturbed run must then leave every message in the folder exactly once
(by Message-ID) and Dovecot's maildir empty, or, leaving mail on the server, every message still
there and none fetched again; and the setting's `--command` (appending the message's path to a
file) must have run at least once for every stored message, and for nothing else.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
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


def appending_command(log: Path) -> str:
    """A `--command` that appends the message's path (its last argument) to `log`."""
    return shlex.join(["/bin/sh", "-c", 'printf "%s\\n" "$1" >> "$0"', str(log)])


def commands_run(log: Path) -> Counter[str]:
    """How often the command ran, by message path."""
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def stored_paths(folder: Path) -> set[str]:
    return {str(folder / sub / name) for sub in ("new", "cur") for name in os.listdir(folder / sub)}


def big_message(n: int) -> bytes:
    return message(n) + PADDING * 40  # ~40 KB: RETR and fsync take a noticeable time


def timed_run(cli: Cli) -> float:
    started = time.monotonic()
    cli.ok("receive")
    return time.monotonic() - started


def delivered_count(folder: Path) -> int:
    return sum(len(os.listdir(folder / sub)) for sub in ("new", "cur") if (folder / sub).is_dir())


def kill_at_random(
    process: subprocess.Popen[bytes],
    rng: random.Random,
    *,
    folder: Path,
    log: Path,
    startup: float,
    added: int,
) -> None:
    """Kill during start-up (one round in four); or once a random number of the pending
    messages has arrived (one in two), or of the owed commands has run (the rest), plus a
    random few milliseconds: anywhere within a message's RETR, fsync, rename, DELE, the sync of
    the folder, owed record and ledger, the QUIT, or the commands that run after it."""
    roll = rng.random()
    if roll < 0.25:
        time.sleep(rng.uniform(0.3 * startup, startup))
    else:
        if roll < 0.75:
            progress, jitter = functools.partial(delivered_count, folder), 0.015
        else:  # commands take a few milliseconds each
            progress, jitter = functools.partial(ran_count, log), 0.003
        target = progress() + rng.randint(0, max(1, added - progress()) - 1)
        deadline = time.monotonic() + startup + 30
        while process.poll() is None and time.monotonic() < deadline:
            if progress() >= target:
                break
            time.sleep(0.001)
        time.sleep(rng.uniform(0, jitter))
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def ran_count(log: Path) -> int:
    """For how many messages the command has run."""
    return len(commands_run(log))


def left_to_heal(folder: Path, dovecot: Dovecot, added: int, *, leave_on_server: bool) -> bool:
    """Whether a kill left deliveries for the next run to finish: a partial file in tmp/, a
    stored message not yet in the ledger, or (deleting) a stored message still on the server."""
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
    cli: Cli,
    dovecot: Dovecot,
    rng: random.Random,
    *,
    folder: Path,
    log: Path,
    startup: float,
    leave: bool,
) -> tuple[int, int, int]:
    """Returns (kills, kills that left deliveries to finish, kills that left commands owed)."""
    kills = unfinished = owing = 0
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
        kill_at_random(process, rng, folder=folder, log=log, startup=startup, added=added)
        if process.returncode == -signal.SIGKILL:
            kills += 1
            unfinished += left_to_heal(folder, dovecot, added, leave_on_server=leave)
            owing += bool(stored_paths(folder) - set(commands_run(log)))
    return kills, unfinished, owing


@pytest.mark.parametrize("leave_on_server", [False, True], ids=["delete", "leave"])
def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path, leave_on_server: bool
) -> None:
    folder = tmp_path / "fax"
    log = tmp_path / "commands.log"
    extra = ("--leave-on-server",) if leave_on_server else ()
    oauth_pop(cli, sandbox, dovecot_peer, folder, *extra, "--command", appending_command(log))
    startup = timed_run(cli)
    for n in range(INITIAL):
        dovecot_peer.add_message(ACCOUNT, big_message(n))
    rng = random.Random(20261127 + leave_on_server)

    kills, unfinished, owing = killed_rounds(
        cli, dovecot_peer, rng, folder=folder, log=log, startup=startup, leave=leave_on_server
    )
    final = json.loads(cli.ok("receive", "--json"))

    total = INITIAL + ROUNDS * PER_ROUND
    ran = commands_run(log)
    repeated = sum(count - 1 for count in ran.values())
    print(f"kills={kills} unfinished={unfinished} owing={owing} startup={startup:.2f}s")
    print(f"final={final}")
    print(f"commands: {ran.total()} runs for {len(ran)} messages, {repeated} repeated")
    # The test must have exercised crash recovery, whatever the machine's speed: kills that
    # landed mid-work are timing-dependent, so the floor is low but never zero.
    assert kills >= ROUNDS // 3
    assert unfinished >= 3, "too few kills landed while messages were being received"
    assert owing >= 3, "too few kills landed before the commands of stored messages had run"
    assert message_ids(folder) == sorted(f"<fax-{n}@example.test>" for n in range(total))
    assert dovecot_peer.maildir_count(ACCOUNT) == (total if leave_on_server else 0)
    again = json.loads(cli.ok("receive", "--json"))["settings"][0]
    assert again["fetched"] == 0
    assert again["skipped"] == (total if leave_on_server else 0)
    assert list((folder / "tmp").iterdir()) == []
    # Every stored message had its command run, at least once (a kill while it ran repeats it);
    # none never, and nothing else.
    assert set(ran) == stored_paths(folder)
    assert again["commands_run"] == 0


def test_a_run_after_a_kill_before_any_command_ran_runs_them_all(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    folder = tmp_path / "fax"
    log = tmp_path / "commands.log"
    # The first command kills tokenpost itself (kill -9 of its parent) the moment it starts: the
    # messages are stored and deleted on the server, and not one command has run to its end.
    oauth_pop(cli, sandbox, dovecot_peer, folder, "--command", "/bin/sh -c 'kill -9 $PPID'")
    for n in range(5):
        dovecot_peer.add_message(ACCOUNT, message(n))

    killed = cli.run("receive")

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert dovecot_peer.maildir_count(ACCOUNT) == 0
    assert len(stored_paths(folder)) == 5
    cli.ok("pop", "add", "fax", "--command", appending_command(log))
    report = json.loads(cli.ok("receive", "--json"))["settings"][0]
    assert (report["fetched"], report["commands_run"], report["commands_owed"]) == (0, 5, 0)
    assert commands_run(log) == Counter(stored_paths(folder))  # each once
    again = json.loads(cli.ok("receive", "--json"))["settings"][0]
    assert again["commands_run"] == 0
