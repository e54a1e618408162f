"""What the sandbox SMTP server writes into its directory, each file atomically.

    ready.json             {"host", "starttls_port", "tls_port", "ca_file", "pid"}, once listening
    stats.json             {"auth": {MECH: {outcome: n}}, "resets", "connections",
                            "messages_received", "messages_dropped"}, after every change
    messages/NNNNNN.eml    the message as received after DATA (dot-unstuffed)
    messages/NNNNNN.json   its envelope, written after the .eml: a reader that lists *.json
                           never sees half a message

Temporary files start with a dot, so `[0-9]*` globs never match them.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Final

READY_FILE: Final = "ready.json"
STATS_FILE: Final = "stats.json"
MESSAGES_DIR: Final = "messages"
_COUNTS: Final = ("connections", "mail_commands", "messages_received", "messages_dropped")


class Stats:
    """Counters of one server process, mirrored to stats.json."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._resets = -1
        self.reset()

    def reset(self) -> None:
        """Zero every counter; `resets` counts the calls, so a reader can wait for one."""
        self._resets += 1
        self._auth: collections.Counter[tuple[str, str]] = collections.Counter()
        self._counts: collections.Counter[str] = collections.Counter()
        self._write()

    def auth(self, mechanism: str, outcome: str) -> None:
        self._auth[mechanism, outcome] += 1
        self._write()

    def count(self, name: str) -> None:
        if name not in _COUNTS:
            raise ValueError(f"unknown counter {name!r}")
        self._counts[name] += 1
        self._write()

    def _write(self) -> None:
        auth: dict[str, dict[str, int]] = {}
        for (mechanism, outcome), n in sorted(self._auth.items()):
            auth.setdefault(mechanism, {})[outcome] = n
        counts = {name: self._counts[name] for name in _COUNTS}
        write_json_atomically(self._path, {"auth": auth, "resets": self._resets} | counts)


class MessageStore:
    """messages/NNNNNN.eml + .json, numbered on from the highest number already there."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(exist_ok=True)
        numbers = (int(p.stem) for p in directory.glob("[0-9]*.json") if p.stem.isdigit())
        self._next = 1 + max(numbers, default=0)

    def save(self, content: bytes, envelope: dict[str, object]) -> int:
        """Store one message; returns its number."""
        number, self._next = self._next, self._next + 1
        stem = self._directory / f"{number:06d}"
        write_bytes_atomically(stem.with_suffix(".eml"), content)
        write_json_atomically(stem.with_suffix(".json"), envelope)
        return number


def write_bytes_atomically(path: Path, content: bytes) -> None:
    """Write to a temporary name, then rename: a reader sees nothing or everything."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temporary, path)


def write_json_atomically(path: Path, content: object) -> None:
    write_bytes_atomically(path, json.dumps(content, indent=2).encode("utf-8"))
