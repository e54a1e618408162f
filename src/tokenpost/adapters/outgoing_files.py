"""Files to send as attachments: checked up front, typed by their name, read in chunks.

    attachment = open_attachment(Path("/scans/Scan 0001.pdf"))   # UsageError if unreadable
    Draft(to=(...), attachments=(attachment,))

This is the I/O half of attaching a file; the MIME core (`tokenpost.mime`) does none. Here the
file is checked (a regular file we may read) before any connection is opened, its size is taken
(the core computes the message's exact size from it, RFC 1870), its MIME type is guessed from its
name, and its content is read in chunks of `READ_SIZE` octets only while the message is written,
so a 100 MB scan needs no 100 MB of memory. The guess consults the host's mime.types files (the
stdlib `mimetypes` reads them on first use); the types a device sends most are pinned, whatever
the host's files say.

A file name that is not UTF-8 (an old share's Latin-1 name) is sent with U+FFFD in place of the
bytes that do not decode: the file itself is sent whole, only its name is repaired, as a mail
reader would show it.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tokenpost.errors import UsageError
from tokenpost.mime import OCTET_STREAM, Attachment

# 4096 base64 lines of input: chunks encode without carrying octets between them.
READ_SIZE: Final = 57 * 4096

# Types a device sends most are pinned, whatever the host's mime.types says.
_PINNED_TYPES: Final = {
    ".pdf": "application/pdf",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}
_COMPRESSED_TYPES: Final = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}


def open_attachment(path: Path) -> Attachment:
    """An attachment of the file at `path`, read in chunks while the message is written.

    The file is checked now, so a bad one fails before any connection; its content is read anew
    each time the attachment is iterated, and must still have the size it has now.

    Raises:
        UsageError: `path` is missing, not a regular file, or unreadable.
    """
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise UsageError("attachment {path}: not a regular file", path=shown_path(path))
        with path.open("rb"):
            pass
    except OSError as error:
        raise UsageError(
            "attachment {path}: cannot be read ({reason})",
            path=shown_path(path),
            reason=_reason(error),
        ) from None
    name = attachment_name(path)
    return Attachment(
        name, FileChunks(path), size=status.st_size, content_type=content_type_for(name)
    )


def attachment_name(path: Path) -> str:
    """The file name to send: the last component of `path`, with undecodable bytes as U+FFFD."""
    return os.fsencode(path.name).decode("utf-8", "replace")


def shown_path(path: Path | str) -> str:
    """`path` for a message: bytes that are not UTF-8 as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def content_type_for(filename: str) -> str:
    """The MIME type of an attachment by its extension; application/octet-stream if unknown.

    A compressed file (``.gz``, ``.bz2``) is its compression's type. The core sends message/*
    and multipart/* as octet streams (they may not be base64-encoded)."""
    dot = filename.rfind(".")
    pinned = _PINNED_TYPES.get(filename[dot:].lower()) if dot >= 0 else None
    if pinned is not None:
        return pinned
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding is not None:
        return _COMPRESSED_TYPES.get(encoding, OCTET_STREAM)
    return guessed or OCTET_STREAM


class FileChunks:
    """A file's content as chunks of READ_SIZE octets; each iteration reads it from the start."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __iter__(self) -> Iterator[bytes]:
        try:
            with self._path.open("rb") as file:
                while chunk := file.read(READ_SIZE):
                    yield chunk
        except OSError as error:
            raise UsageError(
                "attachment {path}: {reason}", path=shown_path(self._path), reason=_reason(error)
            ) from None

    def __repr__(self) -> str:
        return f"FileChunks({shown_path(self._path)!r})"


def _reason(error: OSError) -> str:
    return error.strerror or os.strerror(error.errno or 0) or type(error).__name__
