"""The Maildir drop on a real file system: delivery, the ledger, crash recovery, attachments."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.adapters.attachments import MAX_NAME_BYTES, safe_file_name, unique_name
from tokenpost.adapters.maildir import (
    MaildirDrop,
    delivery_key,
    key_of,
    ledger_name,
    open_maildir,
)
from tokenpost.errors import DeliveryError
from tokenpost.settings.model import AuthMethod, PopSetting, Security

MESSAGE = b"From: a@example.test\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"


def pop(folder: Path, name: str = "fax") -> PopSetting:
    return PopSetting(
        name=name,
        server="pop.example.test",
        port=995,
        security=Security.TLS,
        check_interval=60,
        auth=AuthMethod.PASSWORD,
        deliver_to=str(folder),
        account="fax@example.test",
    )


async def deliver(drop: MaildirDrop, uidl: str, data: bytes = MESSAGE) -> Path:
    delivery = await drop.begin(uidl)
    for start in range(0, len(data), 7):
        delivery.write(data[start : start + 7])
    return Path((await delivery.commit()).path)


def listing(folder: Path, sub: str) -> list[str]:
    return sorted(os.listdir(folder / sub))


def fax_message(*attachments: tuple[str | None, str, bytes]) -> bytes:
    message = EmailMessage()
    message["From"] = "fax@example.test"
    message["Subject"] = "Fax"
    message.set_content("A fax for you.")
    for filename, content_type, payload in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


async def test_a_committed_message_is_in_new_with_its_key(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        assert await drop.recover() == []
        path = await deliver(drop, "uid-1")
        assert drop.delivered("uid-1")
        assert not drop.delivered("uid-2")
    assert path.parent == tmp_path / "new"
    assert path.read_bytes() == MESSAGE
    assert key_of(path.name) == delivery_key("pop:fax", "uid-1")
    assert listing(tmp_path, "tmp") == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sub in ("tmp", "new", "cur"):
        assert stat.S_IMODE((tmp_path / sub).stat().st_mode) == 0o700


async def test_the_folder_is_created_with_parents(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    async with open_maildir(pop(folder)) as drop:
        await deliver(drop, "u")
    assert len(listing(folder, "new")) == 1


async def test_the_ledger_remembers_messages_the_user_removed(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        path = await deliver(drop, "uid-1")
    path.unlink()
    async with open_maildir(pop(tmp_path)) as drop:
        await drop.recover()
        assert drop.delivered("uid-1")
    line = (tmp_path / ledger_name("pop:fax")).read_text()
    assert line == f"{delivery_key('pop:fax', 'uid-1')} uid-1\n"


async def test_a_message_moved_to_cur_with_flags_counts_as_delivered(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        path = await deliver(drop, "uid-1")
    (tmp_path / ledger_name("pop:fax")).unlink()  # only the file name says it now
    path.rename(tmp_path / "cur" / (path.name + ":2,S"))
    async with open_maildir(pop(tmp_path)) as drop:
        assert drop.delivered("uid-1")


async def test_keys_belong_to_one_setting(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path, "fax")) as drop:
        await deliver(drop, "same-uidl")
    async with open_maildir(pop(tmp_path, "print")) as other:
        assert await other.recover() == []
        assert not other.delivered("same-uidl")
        await deliver(other, "same-uidl")
    assert len(listing(tmp_path, "new")) == 2
    assert (
        not (tmp_path / ledger_name("pop:print"))
        .read_text()
        .startswith(delivery_key("pop:fax", "same-uidl"))
    )


async def test_recovery_records_a_message_stored_but_not_recorded(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        path = await deliver(drop, "uid-1")
    ledger = tmp_path / ledger_name("pop:fax")
    ledger.unlink()  # as if killed between the rename and the ledger append
    async with open_maildir(pop(tmp_path)) as drop:
        recovered = await drop.recover()
        assert [m.path for m in recovered] == [str(path)]
    path.unlink()
    async with open_maildir(pop(tmp_path)) as drop:
        assert await drop.recover() == []
        assert drop.delivered("uid-1")
    assert ledger.read_text() == f"{delivery_key('pop:fax', 'uid-1')}\n"


async def test_keys_reach_the_ledger_at_sync_only(tmp_path: Path) -> None:
    ledger = tmp_path / ledger_name("pop:fax")
    drop = MaildirDrop.open(tmp_path, "pop:fax")
    await deliver(drop, "uid-1")
    assert drop.delivered("uid-1")
    assert not ledger.exists()
    await drop.sync()
    assert ledger.read_text() == f"{delivery_key('pop:fax', 'uid-1')} uid-1\n"
    await drop.sync()  # nothing new: nothing written
    await deliver(drop, "uid-2")  # then the process dies: no sync
    again = MaildirDrop.open(tmp_path, "pop:fax")
    [recovered] = await again.recover()
    assert Path(recovered.path).read_bytes() == MESSAGE
    assert len(ledger.read_text().splitlines()) == 2


async def test_a_torn_ledger_line_is_ignored_and_followed_by_a_new_line(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        first = await deliver(drop, "uid-1")
    ledger = tmp_path / ledger_name("pop:fax")
    torn_key = delivery_key("pop:fax", "uid-2")
    with ledger.open("a") as out:
        out.write(torn_key[:20])  # killed mid-append
    first.unlink()
    async with open_maildir(pop(tmp_path)) as drop:
        assert drop.delivered("uid-1")
        assert not drop.delivered("uid-2")
        await deliver(drop, "uid-3")
    lines = ledger.read_text().splitlines()
    assert lines[1] == torn_key[:20]
    assert lines[2].startswith(delivery_key("pop:fax", "uid-3"))
    async with open_maildir(pop(tmp_path)) as drop:
        assert drop.delivered("uid-3")


async def test_recovery_removes_our_partial_files_only(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)):
        pass
    key = delivery_key("pop:fax", "uid-1")
    (tmp_path / "tmp" / f"1700000000.M1P2_tp{key}.host").write_bytes(b"half a mess")  # killed
    foreign = tmp_path / "tmp" / "1700000000.M1P2.otherhost"
    foreign.write_bytes(b"another deliverer's")
    async with open_maildir(pop(tmp_path, "other")) as other:
        await other.recover()
    assert len(listing(tmp_path, "tmp")) == 2  # another setting's partial file is not its own
    async with open_maildir(pop(tmp_path)) as drop:
        assert await drop.recover() == []
        assert not drop.delivered("uid-1")
    assert listing(tmp_path, "tmp") == [foreign.name]
    assert listing(tmp_path, "new") == []


async def test_discard_removes_the_partial_file(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        delivery = await drop.begin("uid-1")
        delivery.write(b"partial")
        delivery.discard()
        delivery.discard()
        assert not drop.delivered("uid-1")
    assert listing(tmp_path, "tmp") == []


async def test_discard_after_commit_keeps_the_message(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        delivery = await drop.begin("uid-1")
        delivery.write(MESSAGE)
        await delivery.commit()
        delivery.discard()
    assert len(listing(tmp_path, "new")) == 1


async def test_a_folder_that_is_a_file_is_a_delivery_error(tmp_path: Path) -> None:
    (tmp_path / "inbox").write_text("not a directory")
    with pytest.raises(DeliveryError, match="cannot use the delivery folder"):
        async with open_maildir(pop(tmp_path / "inbox")):
            pass


# Run in a child process: a file size limit makes every write past 4 KB fail with EFBIG, as a
# full disk fails with ENOSPC.
_LIMITED_DELIVERY = """
import asyncio, resource, signal, sys
from tests_maildir_child import run
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
sys.exit(asyncio.run(run(sys.argv[1])))
"""

_CHILD = """
from pathlib import Path
from tokenpost.adapters.maildir import open_maildir
from tokenpost.errors import DeliveryError
from tokenpost.settings.model import AuthMethod, PopSetting, Security

async def run(folder):
    setting = PopSetting("fax", "pop.example.test", 995, Security.TLS, 60, AuthMethod.NONE, folder)
    async with open_maildir(setting) as drop:
        delivery = await drop.begin("uid-big")
        delivery.write(b"x" * 100_000)
        try:
            await delivery.commit()
        except DeliveryError as error:
            print(error)
            return 0 if not drop.delivered("uid-big") else 3
    return 2
"""


def test_a_failed_write_fails_the_commit_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "tests_maildir_child.py").write_text(_CHILD)
    folder = tmp_path / "inbox"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _LIMITED_DELIVERY, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stays on the server" in result.stdout
    assert listing(folder, "new") == []
    assert listing(folder, "tmp") == []


async def test_a_second_opener_waits_for_the_first(tmp_path: Path) -> None:
    order: list[str] = []

    async def hold(label: str, seconds: float) -> None:
        async with open_maildir(pop(tmp_path)):
            order.append(label + " in")
            await asyncio.sleep(seconds)
            order.append(label + " out")

    first = asyncio.create_task(hold("first", 0.3))
    await asyncio.sleep(0.05)
    await asyncio.gather(first, hold("second", 0))
    assert order == ["first in", "first out", "second in", "second out"]


async def test_attachments_are_extracted_next_to_the_message(tmp_path: Path) -> None:
    data = fax_message(
        ("fax.pdf", "application/pdf", b"%PDF-1.4 fax"),
        ("../../etc/passwd", "application/octet-stream", b"not a path"),
        ("fax.pdf", "image/tiff", b"II*\x00tiff"),
        (None, "image/tiff", b"II*\x00nameless"),
    )
    async with open_maildir(pop(tmp_path)) as drop:
        delivery = await drop.begin("uid-1")
        delivery.write(data)
        delivered = await delivery.commit()
    assert delivered.attachments is not None
    folder = Path(delivered.attachments)
    assert folder == tmp_path / "attachments" / Path(delivered.path).name
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert files["fax.pdf"] == b"%PDF-1.4 fax"
    assert files["fax-2.pdf"] == b"II*\x00tiff"
    assert files["passwd"] == b"not a path"
    assert [n for n in files if n.startswith("part-")] == ["part-6.tiff"]
    assert files["part-6.tiff"] == b"II*\x00nameless"
    assert not (tmp_path / "etc").exists()
    assert [p.name for p in (tmp_path / "attachments").iterdir()] == [folder.name]


async def test_a_message_without_attachments_gets_no_folder(tmp_path: Path) -> None:
    async with open_maildir(pop(tmp_path)) as drop:
        delivery = await drop.begin("uid-1")
        delivery.write(fax_message())
        assert (await delivery.commit()).attachments is None
    assert not (tmp_path / "attachments").exists()


async def test_a_single_part_document_is_extracted_and_plain_text_is_not(tmp_path: Path) -> None:
    document = (
        b"From: scanner@example.test\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"
    )
    text = b"From: a@example.test\r\nContent-Type: text/plain\r\n\r\n" + b"words\r\n" * 1000
    async with open_maildir(pop(tmp_path)) as drop:
        results = []
        for uidl, data in (("doc", document), ("text", text)):
            delivery = await drop.begin(uidl)
            delivery.write(data)
            results.append(await delivery.commit())
    assert results[0].attachments is not None
    assert (Path(results[0].attachments) / "part-1.pdf").read_bytes() == b"%PDF-1.4"
    assert results[1].attachments is None


async def test_recovery_finishes_half_extracted_attachments(tmp_path: Path) -> None:
    data = fax_message(("fax.pdf", "application/pdf", b"%PDF"))
    async with open_maildir(pop(tmp_path)) as drop:
        delivery = await drop.begin("uid-1")
        delivery.write(data)
        delivered = await delivery.commit()
    assert delivered.attachments is not None
    final = Path(delivered.attachments)
    # As if killed mid-extraction: a staging folder, no final folder, no ledger line.
    staging = final.with_name(".tmp-" + final.name)
    final.rename(staging)
    (staging / "fax.pdf").write_bytes(b"%PD")
    (tmp_path / ledger_name("pop:fax")).unlink()
    async with open_maildir(pop(tmp_path)) as drop:
        [recovered] = await drop.recover()
    assert recovered.attachments == str(final)
    assert (final / "fax.pdf").read_bytes() == b"%PDF"
    assert not staging.exists()


async def test_a_message_the_parser_cannot_take_apart_is_still_delivered(tmp_path: Path) -> None:
    garbage = b'Content-Type: multipart/mixed; boundary="\xff"\r\n\r\n--\xff\r\n\x00\x01' * 50
    async with open_maildir(pop(tmp_path)) as drop:
        delivery = await drop.begin("uid-1")
        delivery.write(garbage)
        delivered = await delivery.commit()
    assert Path(delivered.path).read_bytes() == garbage


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fax.pdf", "fax.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\evil.exe", "evil.exe"),
        ("..", "part-3.bin"),
        (".hidden", "hidden"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("we<i>rd:na|me?.pdf", "weirdname.pdf"),
        (None, "part-3.bin"),
        ("", "part-3.bin"),
    ],
)
def test_safe_file_names(raw: str | None, expected: str) -> None:
    assert safe_file_name(raw, 3, "application/octet-stream") == expected


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = safe_file_name("ä" * 300 + ".pdf", 1, "application/pdf")
    assert name.endswith(".pdf")
    assert len(name.encode()) <= MAX_NAME_BYTES


def test_equal_names_are_numbered_without_case() -> None:
    taken: set[str] = set()
    names = [unique_name(n, taken) for n in ["Fax.pdf", "fax.PDF", "fax.pdf", "README", "readme"]]
    assert names == ["Fax.pdf", "fax-2.PDF", "fax-3.pdf", "README", "readme-2"]


@given(st.text(max_size=400))
def test_any_name_from_a_mail_becomes_one_safe_component(raw: str) -> None:
    name = safe_file_name(raw, 1, "application/pdf")
    assert name
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert not name.startswith(".")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert all(c.isprintable() for c in name)


@given(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=70)
)
def test_keys_round_trip_through_names(uidl: str) -> None:
    key = delivery_key("pop:fax", uidl)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{32}", key)
    name = f"1700000000.M12P34_tp{key}.host.example"
    assert key_of(name) == key
    assert key_of(name + ":2,RS") == key
    assert key_of("1700000000.M12P34.host.example") is None
