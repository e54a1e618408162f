"""The per-message command is owed, not best effort: run at least once for every stored message,
whatever moment a kill picks; retried when it cannot start; logged without the command line."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

import pytest
from service_world import World, provider
from test_receive import ReceiveWorld, mail

from kill_points import Killed, KillPoints
from tokenpost.adapters.maildir import MaildirDrop, key_of, ledger_name, owed_name
from tokenpost.adapters.maildir_records import Ledger, OwedRecord

COMMAND = "print-fax --password 's3cret pw'"


@pytest.fixture
async def rw(world: World, tmp_path: Path) -> ReceiveWorld:
    r = ReceiveWorld(world, tmp_path / "inbox")
    await r.put()
    await r.token()
    return r


def stored(folder: Path) -> dict[str, str]:
    """key -> path of every message in new/ and cur/."""
    found = {}
    for sub in ("new", "cur"):
        for name in os.listdir(folder / sub):
            key = key_of(name)
            assert key is not None
            found[key] = str(folder / sub / name)
    return found


def ran(rw: ReceiveWorld) -> list[str]:
    """The message path of every command call, in order."""
    return [argv[-1] for argv, _ in rw.runner.calls]


async def fresh_world(folder: Path, *, uidls: int) -> ReceiveWorld:
    world = World()
    await world.store.put_provider(provider())
    rw = ReceiveWorld(world, folder)
    await rw.put(command=COMMAND)
    await rw.token()
    for n in range(1, uidls + 1):
        rw.server.add(f"uid-{n}", mail(n))
    return rw


# A killed process leaves its files open: that is the point, not a leak to report.
KILL_WARNINGS = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


async def killed_run(rw: ReceiveWorld, kills: KillPoints, monkeypatch: pytest.MonkeyPatch) -> bool:
    """One run with kill -9 at the chosen step; True when the kill struck."""
    rw.runner.kills = kills
    rw.server.crash_hook = kills.point  # RETR, DELE, QUIT
    killed = False
    try:
        with kills.active(monkeypatch):
            await rw.receiver.receive()
    except Killed:
        killed = True
    finally:
        rw.runner.kills = None
        rw.server.crash_hook = lambda point: None
    gc.collect()  # the files the "dead process" left open are closed now, within the test
    return killed


@KILL_WARNINGS
async def test_a_kill_at_any_step_leaves_each_stored_message_with_its_command_run_or_owed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walks every file-system step of a run (writing, fsync, rename, the owed record, the
    ledger, each command's start and end, the record of its end) and kills the run there."""
    at = 0
    while True:
        folder = tmp_path / f"kill-{at}"
        rw = await fresh_world(folder, uidls=3)
        kills = KillPoints(folder, at=at)
        if not await killed_run(rw, kills, monkeypatch):
            break
        # What the next run finds, before it runs anything: every message the ledger records
        # has its command run or owed; every other stored message is recovered into that state.
        ledger, record = (
            Ledger(folder / ledger_name("pop:fax")),
            OwedRecord(folder / owed_name("pop:fax")),
        )
        ledger.load()
        record.load()
        done = {key_of(Path(path).name) for path in ran(rw)}
        assert ledger.keys <= done | set(record.owed), kills.steps
        drop = MaildirDrop.open(folder, "pop:fax", owes_commands=True)
        await drop.recover()
        owed = {item.key for item in await drop.owed_commands()}
        assert set(stored(folder)) <= done | owed, kills.steps

        report = (await rw.receiver.receive()).settings[0]

        assert report.ok, (kills.steps, report)
        paths = stored(folder)
        assert len(paths) == 3
        assert set(paths.values()) <= set(ran(rw)), kills.steps  # none never
        assert await MaildirDrop.open(folder, "pop:fax").owed_commands() == []
        again = (await rw.receiver.receive()).settings[0]
        assert again.commands_run == 0
        at += 1
    # The walk reached every kind of step (guards against a walk that stops early).
    reached = " ".join(kills.steps)
    steps = ("retr", "dele", "quit", "fsync new", "rename tmp/", ".owed", ".uidl", "command ends")
    for step in steps:
        assert step in reached, reached
    assert at > 20


@KILL_WARNINGS
async def test_a_kill_before_any_command_ran_leaves_them_all_to_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = KillPoints(tmp_path / "shape", at=None)  # counts the steps of a run like it
    await killed_run(await fresh_world(tmp_path / "shape", uidls=4), shape, monkeypatch)
    folder = tmp_path / "inbox"
    rw = await fresh_world(folder, uidls=4)
    kills = KillPoints(folder, at=shape.steps.index("command starts"))

    assert await killed_run(rw, kills, monkeypatch)

    assert rw.runner.calls == []
    assert rw.server.messages == {}  # deleted on the server: the commands are owed
    report = (await rw.receiver.receive()).settings[0]
    assert (report.fetched, report.commands_run, report.commands_failed) == (0, 4, 0)
    assert sorted(ran(rw)) == sorted(stored(folder).values())


async def test_a_command_that_cannot_start_stays_owed_and_runs_oldest_first_later(
    rw: ReceiveWorld, caplog: pytest.LogCaptureFixture
) -> None:
    await rw.put(command=COMMAND)
    rw.server.add("uid-1", mail(1))
    rw.server.add("uid-2", mail(2))
    rw.runner.fails_to_start = True

    first = (await rw.receiver.receive()).settings[0]

    assert (first.fetched, first.deleted, first.commands_run) == (2, 2, 0)
    assert (first.commands_failed, first.commands_owed) == (1, 2)
    assert not first.ok
    assert first.error is None
    assert rw.events == []  # receiving worked: no receive_failed
    assert len(rw.runner.calls) == 1  # the first failure ends the pass: the rest would fail too
    [line] = [r for r in caplog.records if r.name == "tokenpost.receive.command"]
    assert line.levelno == logging.WARNING
    assert "could not be started" in line.getMessage()
    assert "tokenpost pop add fax --command" in line.getMessage()  # the fix
    assert "s3cret" not in caplog.text

    rw.runner.fails_to_start = False
    rw.runner.calls.clear()
    rw.server.add("uid-3", mail(3))
    second = (await rw.receiver.receive()).settings[0]

    assert (second.fetched, second.commands_run, second.commands_owed) == (1, 3, 0)
    assert second.ok
    by_uidl = sorted(stored(rw.folder).values(), key=lambda p: mail_number(Path(p)))
    assert ran(rw) == by_uidl  # the two owed ones first, oldest first, then the new one
    third = (await rw.receiver.receive()).settings[0]
    assert third.commands_run == 0


def mail_number(path: Path) -> int:
    head = path.read_bytes().split(b"Message-ID: <m", 1)[1]
    return int(head.split(b"@", 1)[0])


async def test_a_command_that_ran_is_done_whatever_its_exit_status_or_timeout(
    rw: ReceiveWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await rw.put(command=COMMAND)
    outcomes: list[tuple[int | None, int]] = [
        (0, logging.INFO),
        (3, logging.WARNING),
        (None, logging.WARNING),
    ]
    for n, (returncode, level) in enumerate(outcomes, start=1):
        caplog.clear()
        rw.runner.returncode = returncode
        rw.runner.output = "line one\n" + "x" * 1000 + f"\ntray {n} empty\n"
        rw.server.add(f"uid-{n}", mail(n))
        report = (await rw.receiver.receive()).settings[0]
        assert report.commands_run == 1
        assert report.commands_failed == (returncode != 0)
        [line] = [r for r in caplog.records if r.name == "tokenpost.receive.command"]
        text = line.getMessage()
        assert line.levelno == level
        assert "pop:fax" in text
        assert ran(rw)[-1] in text
        assert (f"exit status {returncode}" if returncode is not None else "timeout") in text
        assert f"tray {n} empty" in text
        assert "line one" not in text  # a bounded tail
        assert len(text) < 700
        assert "s3cret" not in caplog.text
    assert len(rw.runner.calls) == 3  # each ran once: none is owed again


async def test_a_message_removed_before_its_command_ran_drops_the_command(
    rw: ReceiveWorld, caplog: pytest.LogCaptureFixture
) -> None:
    await rw.put(command=COMMAND)
    rw.server.add("uid-1", mail(1))
    rw.server.add("uid-2", mail(2))
    rw.runner.fails_to_start = True
    await rw.receiver.receive()
    removed = sorted(stored(rw.folder).values(), key=lambda p: mail_number(Path(p)))[0]
    os.unlink(removed)  # the administrator cleans up
    rw.runner.fails_to_start = False
    rw.runner.calls.clear()
    caplog.clear()

    report = (await rw.receiver.receive()).settings[0]

    assert (report.commands_run, report.commands_failed, report.commands_owed) == (1, 0, 0)
    assert report.ok
    assert ran(rw) == list(stored(rw.folder).values())
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "removed from the delivery folder" in warning.getMessage()
    assert Path(removed).name in warning.getMessage()
    assert (await rw.receiver.receive()).settings[0].commands_run == 0


async def test_a_message_moved_to_cur_by_a_reader_gets_its_command_there(rw: ReceiveWorld) -> None:
    await rw.put(command=COMMAND)
    rw.server.add("uid-1", mail(1))
    rw.runner.fails_to_start = True
    await rw.receiver.receive()
    [path] = stored(rw.folder).values()
    moved = rw.folder / "cur" / (Path(path).name + ":2,S")
    os.rename(path, moved)
    rw.runner.fails_to_start = False
    rw.runner.calls.clear()
    assert (await rw.receiver.receive()).settings[0].commands_run == 1
    assert ran(rw) == [str(moved)]


async def test_commands_still_owed_are_dropped_when_the_setting_loses_its_command(
    rw: ReceiveWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await rw.put(command=COMMAND)
    rw.server.add("uid-1", mail(1))
    rw.runner.fails_to_start = True
    await rw.receiver.receive()
    await rw.put(command=None)
    rw.runner.calls.clear()
    report = (await rw.receiver.receive()).settings[0]
    assert report.ok
    assert rw.runner.calls == []
    assert "1 owed commands dropped" in caplog.text
    await rw.put(command=COMMAND)  # given again: nothing is owed any more
    rw.runner.fails_to_start = False
    assert (await rw.receiver.receive()).settings[0].commands_run == 0


async def test_a_failed_session_still_runs_the_commands_of_what_it_stored(rw: ReceiveWorld) -> None:
    await rw.put(command=COMMAND)
    for n in range(1, 4):
        rw.server.add(f"uid-{n}", mail(n, size=5000))
    rw.server.broken_retr = {"uid-2"}

    report = (await rw.receiver.receive()).settings[0]

    assert (report.fetched, report.commands_run) == (1, 1)
    assert report.error is not None
    assert [(e, s, str(d)) for e, s, d in rw.events] == [
        ("receive_failed", "pop:fax", str(report.error))
    ]
    rw.server.broken_retr = set()
    healed = (await rw.receiver.receive()).settings[0]
    assert (healed.fetched, healed.commands_run) == (2, 2)
    assert rw.events[-1] == ("receive_recovered", "pop:fax", "")
    assert sorted(ran(rw)) == sorted(stored(rw.folder).values())


async def test_a_setting_without_a_command_keeps_no_record(rw: ReceiveWorld) -> None:
    rw.server.add("uid-1", mail(1))
    assert (await rw.receiver.receive()).ok
    assert not (rw.folder / owed_name("pop:fax")).exists()
    assert rw.runner.calls == []


async def test_the_scheduled_pass_of_serve_runs_what_is_owed(rw: ReceiveWorld) -> None:
    await rw.put(command=COMMAND)
    rw.server.add("uid-1", mail(1))
    rw.runner.fails_to_start = True
    await rw.receiver.run_due()  # serve's receive pass
    assert len(rw.runner.calls) == 1
    rw.runner.fails_to_start = False
    rw.runner.calls.clear()
    await rw.world.clock.sleep(300)  # the check interval
    await rw.receiver.run_due()
    assert ran(rw) == list(stored(rw.folder).values())
