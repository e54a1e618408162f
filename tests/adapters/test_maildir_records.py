"""The owed-command record and the ledger on a real file system: owed -> done, order, torn and
damaged lines, compaction, and a kill at every step of a compaction."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from kill_points import Killed, KillPoints
from tokenpost.adapters.maildir import MaildirDrop, delivery_key, ledger_name, owed_name
from tokenpost.adapters.maildir_records import COMPACT_MIN_LINES, OwedRecord

MESSAGE = b"From: a@example.test\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"


def key(n: int) -> str:
    return delivery_key("pop:fax", f"uid-{n}")


def reloaded(path: Path) -> OwedRecord:
    record = OwedRecord(path)
    record.load()
    return record


def test_owed_keys_are_kept_in_order_until_done(tmp_path: Path) -> None:
    path = tmp_path / owed_name("pop:fax")
    record = OwedRecord(path)
    record.load()
    record.owe([(key(1), "m1"), (key(2), "m2")])
    record.owe([(key(3), "m3"), (key(1), "again")])  # an owed key keeps its place and name
    record.done(key(2))
    record.done(key(9))  # not owed: nothing written
    assert list(reloaded(path).owed.items()) == [(key(1), "m1"), (key(3), "m3")]
    assert path.read_text().splitlines() == [
        f"+ {key(1)} m1",
        f"+ {key(2)} m2",
        f"+ {key(3)} m3",
        f"- {key(2)}",
    ]


def test_a_key_owed_again_after_it_was_done_is_owed_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / owed_name("pop:fax")
    record = reloaded(path)
    record.owe([(key(1), "m1"), (key(2), "m2")])
    record.done(key(1))
    record.owe([(key(1), "m1-again")])  # fetched again after the user removed it, say
    assert list(reloaded(path).owed) == [key(2), key(1)]


def test_torn_and_damaged_lines_cost_their_own_entry_only(tmp_path: Path) -> None:
    path = tmp_path / owed_name("pop:fax")
    path.write_bytes(
        f"+ {key(1)} m1\n".encode()
        + b"\xff\xfe garbage\n\n+ not-a-key\n"
        + f"+ {key(2)}\n".encode()
        + f"- {key(1)}"[:20].encode()  # killed mid-append
    )
    record = reloaded(path)
    assert list(record.owed.items()) == [(key(1), "m1"), (key(2), "")]
    record.owe([(key(3), "m 3 with spaces")])  # a name that cannot be a word is left out
    assert path.read_bytes().splitlines()[-1] == f"+ {key(3)}".encode()
    assert list(reloaded(path).owed) == [key(1), key(2), key(3)]


def test_the_record_is_compacted_once_most_of_it_is_settled(tmp_path: Path) -> None:
    path = tmp_path / owed_name("pop:fax")
    record = reloaded(path)
    count = COMPACT_MIN_LINES
    record.owe([(key(n), f"m{n}") for n in range(count)])
    for n in range(count - 3):
        record.done(key(n))
    lines = path.read_text().splitlines()
    assert len(lines) < COMPACT_MIN_LINES  # not 2 * count - 3 lines
    assert list(reloaded(path).owed) == [key(n) for n in range(count - 3, count)]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    for n in range(count - 3, count):
        record.done(key(n))
    assert reloaded(path).owed == {}
    # Growth is bounded: a long run of messages never leaves more than the minimum behind.
    for n in range(count, 20 * count):
        record.owe([(key(n), f"m{n}")])
        record.done(key(n))
    assert len(path.read_text().splitlines()) <= COMPACT_MIN_LINES


# A killed process leaves its files open: that is the point, not a leak to report.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_kill_at_any_step_of_a_compaction_keeps_what_is_owed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = 0
    while True:
        folder = tmp_path / f"kill-{at}"
        folder.mkdir()
        path = folder / owed_name("pop:fax")
        record = OwedRecord(path, compact_min_lines=10)
        record.load()
        record.owe([(key(n), f"m{n}") for n in range(6)])
        for n in range(3):
            record.done(key(n))
        assert record.lines == 9
        (folder / (path.name + ".tmp")).write_text("a rewrite killed earlier\n")
        kills = KillPoints(folder, at=at)
        try:
            with kills.active(monkeypatch):
                record.done(key(3))  # 10 lines, 2 owed: compacts
        except Killed:
            pass
        else:
            assert reloaded(path).lines == 2
            break
        gc.collect()
        after = list(reloaded(path).owed)
        # The old record or the new one: key 3 owed or done, the others as they were.
        assert after in ([key(3), key(4), key(5)], [key(4), key(5)]), kills.steps
        again = reloaded(path)
        again.done(key(4))  # the next run goes on from there
        assert list(reloaded(path).owed) == [k for k in after if k != key(4)]
        at += 1
    reached = " ".join(kills.steps)
    assert "unlink" in reached
    assert "rename" in reached
    assert at >= 6


async def test_a_drop_owes_commands_before_it_records_and_only_when_asked(tmp_path: Path) -> None:
    drop = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    delivery = await drop.begin("uid-1")
    delivery.write(MESSAGE)
    stored = await delivery.commit()
    assert await drop.owed_commands() == []  # stored, not yet recorded: not owed yet
    await drop.sync()
    [owed] = await drop.owed_commands()
    assert (owed.key, owed.message) == (key(1), stored)
    assert owed.name == Path(stored.path).name
    await drop.command_done(owed.key)
    assert await MaildirDrop.open(tmp_path, "pop:fax").owed_commands() == []

    plain = MaildirDrop.open(tmp_path / "plain", "pop:fax")
    delivery = await plain.begin("uid-1")
    delivery.write(MESSAGE)
    await delivery.commit()
    await plain.sync()
    assert not (tmp_path / "plain" / owed_name("pop:fax")).exists()
    assert await plain.owed_commands() == []


async def test_recovery_owes_the_commands_of_what_a_killed_run_stored(tmp_path: Path) -> None:
    drop = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    paths = []
    for n in (1, 2):
        delivery = await drop.begin(f"uid-{n}")
        delivery.write(MESSAGE)
        paths.append((await delivery.commit()).path)
    # killed before the sync: neither owed nor recorded
    assert not (tmp_path / ledger_name("pop:fax")).exists()
    again = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    assert sorted(m.path for m in await again.recover()) == sorted(paths)
    owed = await again.owed_commands()
    assert [o.message.path for o in owed if o.message] == sorted(paths)  # oldest first


async def test_an_owed_message_stored_but_not_recorded_waits_for_recovery(tmp_path: Path) -> None:
    drop = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    delivery = await drop.begin("uid-1")
    delivery.write(MESSAGE)
    await delivery.commit()
    await drop.sync()
    (tmp_path / ledger_name("pop:fax")).unlink()  # as if the ledger append had failed
    unrecorded = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    assert await unrecorded.owed_commands() == []  # not run before it is recorded
    await unrecorded.recover()
    assert [o.key for o in await unrecorded.owed_commands()] == [key(1)]


async def test_a_key_owed_but_never_stored_is_not_owed(tmp_path: Path) -> None:
    record = reloaded(tmp_path / owed_name("pop:fax"))
    record.owe([(key(1), "gone")])  # owed, then the sync failed and the file went away
    drop = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    assert await drop.owed_commands() == []
    assert reloaded(tmp_path / owed_name("pop:fax")).owed == {}


async def test_a_removed_message_is_owed_without_a_file(tmp_path: Path) -> None:
    drop = MaildirDrop.open(tmp_path, "pop:fax", owes_commands=True)
    delivery = await drop.begin("uid-1")
    delivery.write(MESSAGE)
    path = Path((await delivery.commit()).path)
    await drop.sync()
    os.unlink(path)
    [owed] = await MaildirDrop.open(tmp_path, "pop:fax").owed_commands()
    assert (owed.key, owed.name, owed.message) == (key(1), path.name, None)
