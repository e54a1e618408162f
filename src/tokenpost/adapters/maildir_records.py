"""The records a POP setting keeps in its delivery folder beside its messages: the ledger of
delivered UIDLs and the record of per-message commands still owed.

Both are files of short ASCII lines, written only by the holder of the setting's lock in the
folder (`maildir.open_maildir`). A kill in the middle of an append can leave a torn last line: it
is ignored when the file is read, and the next append starts a new line. Blank and unreadable
lines are ignored too, so one damaged line costs one entry, never the record.

The ledger (``.tokenpost-pop-NAME.uidl``, ``KEY [UIDL]`` lines) only grows: it is the memory of
every message ever delivered (one short line each), so a message the user moved or deleted is not
fetched again. Appends are fsynced.

The owed record (``.tokenpost-pop-NAME.owed``): ``+ KEY [FILE]`` when the setting's command for a
message becomes owed, ``- KEY`` once it has run to an end or was dropped. The keys owed are those
whose last line is a ``+``, in the order they became owed (oldest first). ``+`` lines are fsynced
before `owe` returns: the drop appends the same keys to the ledger only after that, so a message
recorded as delivered always has its command owed or done, whatever moment a kill picks. ``-``
lines are not fsynced: a kill keeps what was written, and a power loss that drops one only means
the command runs once more (commands run at least once, not exactly once).

The owed record must not grow with every message, so once most of its lines are settled it is
rewritten with the owed lines alone: into a temporary file, fsynced, renamed over the record, and
the folder fsynced. A kill at any point of that leaves the old record or the new one, which owe the
same keys; a leftover temporary file is never read and is replaced by the next rewrite.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from tokenpost.adapters.attachments import fsync_dir, write_durably

# A key: 8 hex digits naming the setting, 32 naming (setting id, UIDL): 128 bits, no collisions.
KEY: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{32}")
UIDL: Final = re.compile(r"[\x21-\x7e]{1,70}")  # RFC 1939 §7
_FILE_NAME: Final = re.compile(r"[\x21-\x7e]{1,255}")  # what a record line may name
# The owed record is rewritten once it has at least this many lines and fewer than half owe.
COMPACT_MIN_LINES: Final = 64


def record_stem(setting_id: str) -> str:
    """The start of the names of a setting's files in its folder: "pop:fax" ->
    ".tokenpost-pop-fax" (setting names are letters, digits, "_", "." and "-")."""
    return ".tokenpost-" + setting_id.replace(":", "-").replace("/", "_")


def ledger_name(setting_id: str) -> str:
    return record_stem(setting_id) + ".uidl"


def owed_name(setting_id: str) -> str:
    return record_stem(setting_id) + ".owed"


class _LineFile:
    """A file of lines that is only appended to; knows whether its last line is torn."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.torn = False

    def read(self) -> list[str]:
        """The complete lines (raises OSError, but not for a missing file)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        *complete, last = data.split(b"\n")
        self.torn = bool(last)
        return [line.decode("ascii", "replace") for line in complete]

    def append(self, lines: Iterable[str], *, sync: bool) -> None:
        """Append whole lines, fsynced when `sync` (raises OSError)."""
        text = ("\n" if self.torn else "") + "".join(line + "\n" for line in lines)
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        try:
            self.torn = True  # until every byte is out: a failed write may leave half a line
            view = memoryview(text.encode("ascii"))
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
            self.torn = False
        finally:
            os.close(fd)
        if created and sync:
            fsync_dir(self.path.parent)


class Ledger:
    """The keys of every message delivered for one setting; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self._file = _LineFile(path)
        self.keys: set[str] = set()

    @property
    def path(self) -> Path:
        return self._file.path

    def load(self) -> None:
        for line in self._file.read():
            key = line.split(" ", 1)[0]
            if KEY.fullmatch(key):
                self.keys.add(key)

    def append(self, entries: Sequence[tuple[str, str | None]]) -> None:
        """Record (key, UIDL) pairs, fsynced (raises OSError). The UIDL is kept for people
        reading the file, when it is printable."""
        self._file.append(
            (key + (f" {uidl}" if uidl and UIDL.fullmatch(uidl) else "") for key, uidl in entries),
            sync=True,
        )
        self.keys.update(key for key, _ in entries)


class OwedRecord:
    """The keys of one setting's messages whose command is owed; see the module docstring."""

    def __init__(self, path: Path, *, compact_min_lines: int = COMPACT_MIN_LINES) -> None:
        self._file = _LineFile(path)
        self._compact_min_lines = compact_min_lines
        self._lines = 0
        # key -> the message's file name when it became owed ("" unknown), oldest first
        self.owed: dict[str, str] = {}

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def lines(self) -> int:
        """Lines in the file (as far as this process wrote or read them)."""
        return self._lines

    def load(self) -> None:
        lines = self._file.read()
        self._lines = len(lines)
        for line in lines:
            words = line.split(" ")
            if len(words) not in (2, 3) or not KEY.fullmatch(words[1]):
                continue
            if words[0] == "+":
                self.owed.setdefault(words[1], words[2] if len(words) == 3 else "")
            elif words[0] == "-":
                self.owed.pop(words[1], None)

    def owe(self, entries: Sequence[tuple[str, str]]) -> None:
        """Record (key, file name) pairs as owed, fsynced (raises OSError). A key already owed
        keeps its place."""
        new = {key: name for key, name in entries if key not in self.owed}
        if not new:
            return
        self._file.append([_owe_line(key, name) for key, name in new.items()], sync=True)
        self.owed.update(new)
        self._lines += len(new)

    def done(self, key: str) -> None:
        """Record that the command of `key` is no longer owed (raises OSError); rewrite the
        record when most of its lines are settled."""
        if key not in self.owed:
            return
        self._file.append([f"- {key}"], sync=False)
        del self.owed[key]
        self._lines += 1
        if self._lines >= self._compact_min_lines and self._lines > 2 * len(self.owed):
            self.compact()

    def compact(self) -> None:
        """Rewrite the record with the owed lines alone, atomically (raises OSError)."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)  # left by a rewrite that was killed
        lines = [_owe_line(key, name) for key, name in self.owed.items()]
        write_durably(temporary, "".join(line + "\n" for line in lines).encode("ascii"))
        os.rename(temporary, self.path)
        fsync_dir(self.path.parent)
        self._file.torn = False
        self._lines = len(lines)


def _owe_line(key: str, name: str) -> str:
    return f"+ {key} {name}" if _FILE_NAME.fullmatch(name) else f"+ {key}"
