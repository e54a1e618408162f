"""Attachment parts of a delivered message (e.g. a fax's TIFF or PDF) as files of their own.

`extract(message, target)` writes the attachments of the message file into the directory
`target`, all or nothing: the files go into a hidden sibling directory first, are fsynced, and the
directory is renamed to `target`. An existing `target` means the work is done (extraction is
idempotent, so recovery after a crash may simply call it again).

File names come from the mail, so they are hostile input: only the last path component is used,
separators, control and shell-special characters are removed, leading dots are stripped, the
length is bounded, and equal names are numbered. A path from the mail never reaches the file
system; the directory is ours and every file is created exclusively (O_EXCL, O_NOFOLLOW).
"""

from __future__ import annotations

import email.policy
import logging
import mimetypes
import os
import shutil
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import BinaryIO, Final

from tokenpost.errors import DeliveryError

log = logging.getLogger("tokenpost.maildir")

# The parser holds a message in memory; larger messages are delivered without extraction.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
_MAX_HEAD_BYTES: Final = 1024 * 1024
MAX_NAME_BYTES: Final = 180  # below NAME_MAX (255) with room for a "-NNN" suffix
TMP_PREFIX: Final = ".tmp-"
_UNSAFE: Final = frozenset('/\\:*?"<>|')
_TEXT_TYPES: Final = frozenset({"text", "multipart", "message"})


def extract(message: Path, target: Path) -> Path | None:
    """Write the attachments of `message` into `target`; None when it has none (or cannot be
    taken apart: it stays delivered, only without extracted files).

    Raises:
        DeliveryError: the files cannot be written (disk full, permissions).
    """
    if target.exists():
        return target
    parts = _attachments(message)
    if not parts:
        return None
    staging = target.with_name(TMP_PREFIX + target.name)
    try:
        _write_all(staging, parts)
        os.rename(staging, target)
        fsync_dir(target.parent)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise DeliveryError(
            "cannot write the attachments of {message} to {folder}: {reason}. Free space on the"
            " file system that holds the folder, or make the folder writable.",
            message=message.name,
            folder=str(target.parent),
            reason=error.strerror or str(error),
        ) from None
    return target


def _attachments(message: Path) -> list[tuple[str, bytes]]:
    try:
        if message.stat().st_size > MAX_MESSAGE_BYTES:
            log.warning("%s: too large to extract its attachments", message.name)
            return []
        with message.open("rb") as source:
            if not _may_have_parts(source):
                return []
            source.seek(0)
            parsed = BytesParser(policy=email.policy.default).parse(source)
    except OSError as error:
        raise DeliveryError(
            "cannot read {message} to extract its attachments: {reason}. Make the delivery"
            " folder readable and writable by tokenpost.",
            message=message.name,
            reason=error.strerror or str(error),
        ) from None
    try:
        return _named_parts(parsed)
    except Exception as error:  # noqa: BLE001 - the stdlib parser on hostile input
        # A message we cannot take apart is still delivered; only its files are missing.
        log.warning("%s: attachments not extracted (%s)", message.name, type(error).__name__)
        return []


def _may_have_parts(source: BinaryIO) -> bool:
    """From the header alone: a single-part text message (most mail) has nothing to extract, so
    its body is never read."""
    lines: list[bytes] = []
    size = 0
    while size < _MAX_HEAD_BYTES:
        line = source.readline(_MAX_HEAD_BYTES)
        if line in (b"", b"\r\n", b"\n"):
            break
        lines.append(line)
        size += len(line)
    head = BytesParser(policy=email.policy.default).parsebytes(b"".join(lines), headersonly=True)
    return _is_attachment(head) or head.get_content_maintype() == "multipart"


def _named_parts(message: Message) -> list[tuple[str, bytes]]:
    taken: set[str] = set()
    parts: list[tuple[str, bytes]] = []
    for index, part in enumerate(message.walk(), start=1):
        if part.is_multipart() or not _is_attachment(part):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        name = unique_name(
            safe_file_name(part.get_filename(), index, part.get_content_type()), taken
        )
        parts.append((name, payload))
    return parts


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    # A fax's image part may come inline and nameless; a plain body text never counts.
    return part.get_content_maintype() not in _TEXT_TYPES


def safe_file_name(raw: str | None, index: int, content_type: str) -> str:
    """A name for one part that is safe as a single file name in our directory."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in _UNSAFE)
    name = name.strip().lstrip(".").strip()
    if not name:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        name = f"part-{index}{extension}"
    return _bounded(name)


def _bounded(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode())
    while len(stem.encode()) > budget:
        stem = stem[:-1]
    return stem + suffix


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name` numbered (``fax-2.pdf``) when taken; compared without case, for case-
    insensitive file systems. Adds the result to `taken`."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    candidate, number = name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem}-{number}" + (f".{extension}" if extension else "")
    taken.add(candidate.casefold())
    return candidate


def _write_all(staging: Path, parts: list[tuple[str, bytes]]) -> None:
    shutil.rmtree(staging, ignore_errors=True)  # a half-written try of an earlier run
    staging.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging.mkdir(mode=0o700)
    for name, payload in parts:
        write_durably(staging / name, payload)
    fsync_dir(staging)


def write_durably(path: Path, data: bytes) -> None:
    """Create `path` (never an existing file or a symlink) with `data`, fsynced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
