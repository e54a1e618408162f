"""The listing of a POP setting's delivery folder: newest first, subject decoded, attachment names,
nothing for a folder that does not exist yet."""

from __future__ import annotations

import os
from pathlib import Path

from tokenpost.adapters.delivered import list_delivered


def store(folder: Path, name: str, content: bytes, mtime: float) -> Path:
    path = folder / "new" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def test_newest_first_with_subjects_sizes_and_attachments(tmp_path: Path) -> None:
    old = store(tmp_path, "1.M1P1_tpA.host", b"Subject: first\r\n\r\nbody\r\n", 1_700_000_000)
    new = store(
        tmp_path,
        "2.M2P1_tpB.host",
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nx\r\n",
        1_700_000_100,
    )
    attachments = tmp_path / "attachments" / new.name
    attachments.mkdir(parents=True)
    (attachments / "scan.pdf").write_bytes(b"%PDF")
    listed = list_delivered(tmp_path, limit=10)
    assert [m.name for m in listed] == [new.name, old.name]
    assert [m.subject for m in listed] == ["Grüße", "first"]
    assert listed[0].attachments == ("scan.pdf",)
    assert listed[1].attachments == ()
    assert listed[1].size == old.stat().st_size
    assert [m.name for m in list_delivered(tmp_path, limit=1)] == [new.name]


def test_a_folder_not_made_yet_lists_nothing(tmp_path: Path) -> None:
    assert list_delivered(tmp_path / "missing", limit=10) == []


def test_a_message_without_headers_lists_without_a_subject(tmp_path: Path) -> None:
    store(tmp_path, "3.M3P1.host", b"\xff\xfe not a message", 1_700_000_000)
    (listed,) = list_delivered(tmp_path, limit=10)
    assert listed.subject == ""
