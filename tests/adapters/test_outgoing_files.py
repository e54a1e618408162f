"""Files to send: checked before any connection, typed by name, read in chunks; and the MIME core
that receives them reads no file and no mime.types itself."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tokenpost.adapters.outgoing_files import (
    READ_SIZE,
    attachment_name,
    content_type_for,
    open_attachment,
    shown_path,
)
from tokenpost.errors import UsageError
from tokenpost.mime import OCTET_STREAM, Draft, Mailbox, build

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("scan.tif", "image/tiff"),
        ("SCAN.TIFF", "image/tiff"),
        ("fax.pdf", "application/pdf"),
        ("photo.jpeg", "image/jpeg"),
        ("notes.txt", "text/plain"),
        ("archive.tar.gz", "application/gzip"),
        ("no-extension", OCTET_STREAM),
        ("data.unknown-extension-xyz", OCTET_STREAM),
    ],
)
def test_content_type_by_extension(name: str, expected: str) -> None:
    assert content_type_for(name) == expected


def test_a_message_file_is_typed_and_the_core_sends_it_as_octets(tmp_path: Path) -> None:
    path = tmp_path / "forwarded.eml"
    path.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    attachment = open_attachment(path)
    assert attachment.content_type == "message/rfc822"
    draft = Draft(to=("a@example.test",), attachments=(attachment,))
    data = b"".join(build(draft, Mailbox("", "s@example.test"), date=NOW, message_id="<m@x>"))
    assert b"Content-Type: application/octet-stream\r\n" in data  # may not be base64 (RFC 2046)


def test_an_attachment_has_the_files_name_size_and_type(tmp_path: Path) -> None:
    path = tmp_path / "Scan 0001.pdf"
    path.write_bytes(b"%PDF-1.7\n" * 1000)
    attachment = open_attachment(path)
    assert (attachment.filename, attachment.size, attachment.content_type) == (
        "Scan 0001.pdf",
        9000,
        "application/pdf",
    )


def test_an_attachment_is_read_anew_each_time_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(600_000))
    attachment = open_attachment(path)
    first = b"".join(attachment.content)
    assert first == b"".join(attachment.content) == path.read_bytes()
    assert all(len(chunk) <= READ_SIZE for chunk in attachment.content)


def test_a_missing_or_unreadable_attachment_is_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"attachment .*missing.pdf: cannot be read \(No such file"
    ):
        open_attachment(tmp_path / "missing.pdf")
    with pytest.raises(UsageError, match="not a regular file"):
        open_attachment(tmp_path)


def test_a_file_that_grows_while_it_is_sent_stops_the_message(tmp_path: Path) -> None:
    path = tmp_path / "scan.tif"
    path.write_bytes(b"II*\x00" * 1000)
    draft = Draft(to=("a@example.test",), attachments=(open_attachment(path),))
    message = build(draft, Mailbox("", "s@example.test"), date=NOW, message_id="<m@x>")
    path.write_bytes(b"II*\x00" * 2000)  # the scanner was not done with it
    with pytest.raises(UsageError, match=r"scan\.tif: it changed while it was being sent"):
        b"".join(message)


def test_a_file_name_that_is_not_utf8_is_sent_repaired(tmp_path: Path) -> None:
    path = Path(os.fsdecode(bytes(tmp_path) + b"/Bericht \xe4.pdf"))
    path.write_bytes(b"%PDF")
    attachment = open_attachment(path)
    assert attachment.filename == attachment_name(path) == "Bericht \ufffd.pdf"
    assert b"".join(attachment.content) == b"%PDF"
    assert shown_path(path).endswith("/Bericht \\xe4.pdf")


def test_the_mime_core_imports_no_mimetypes() -> None:
    # mimetypes reads the host's mime.types files: the caller guesses, the core only writes.
    probe = "import sys, tokenpost.mime; print('mimetypes' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
