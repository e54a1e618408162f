"""What a POP setting's `--deliver-to` folder holds, for a short listing (the web page's demo).

Reads only: the names, sizes and subjects of the newest messages in ``new/`` and ``cur/``, and the
names of their extracted attachments. A message's head is read up to `HEAD_OCTETS`; a folder that
does not exist yet lists nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Final

from tokenpost.adapters.maildir import ATTACHMENTS

HEAD_OCTETS: Final = 64 * 1024
SUBJECT_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class DeliveredMessage:
    """One stored message: its file name, size in octets, subject and attachment names."""

    name: str
    size: int
    subject: str
    attachments: tuple[str, ...]
    modified: float


def list_delivered(folder: Path, limit: int) -> list[DeliveredMessage]:
    """The newest `limit` messages in `folder`'s new/ and cur/, newest first."""
    found: list[tuple[float, Path, int]] = []
    for sub in ("new", "cur"):
        try:
            entries = list(os.scandir(folder / sub))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    status = entry.stat(follow_symlinks=False)
                    found.append((status.st_mtime, Path(entry.path), status.st_size))
            except OSError:
                continue
    found.sort(key=lambda item: (item[0], item[1].name), reverse=True)
    return [
        DeliveredMessage(
            name=path.name,
            size=size,
            subject=_subject(path),
            attachments=_attachments(folder, path.name),
            modified=modified,
        )
        for modified, path, size in found[:limit]
    ]


def _subject(path: Path) -> str:
    try:
        with path.open("rb") as message:
            head = message.read(HEAD_OCTETS)
    except OSError:
        return ""
    try:
        subject = BytesHeaderParser(policy=default_policy).parsebytes(head).get("subject", "")
    except Exception:  # noqa: BLE001 - a malformed header lists as no subject
        return ""
    text = " ".join(str(subject).split())
    return text[:SUBJECT_CHARS]


def _attachments(folder: Path, name: str) -> tuple[str, ...]:
    directory = folder / ATTACHMENTS / name.partition(":")[0]
    try:
        return tuple(sorted(e.name for e in os.scandir(directory) if e.is_file()))
    except OSError:
        return ()
