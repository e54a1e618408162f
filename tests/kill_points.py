"""Simulated kill -9 before any chosen file-system step under one folder.

`KillPoints(folder, at=k)` wraps the os functions through which every durable step of the Maildir
drop and its records passes (open, write, fsync, rename, unlink), and counts each call that
touches `folder`. The call numbered `k` (from 0) raises `Killed` instead of happening, and so does
every later one, as a dead process does nothing more. Nothing is faked about what the steps do
before the kill: the files are the ones a killed process leaves behind. Calls on anything outside
`folder` (the event loop, the test's own files) are passed through untouched and not counted.

Kill points in our own code that are not file-system calls (a command starting or ending) call
`point()`. Walking `at` from 0 until a run goes through unkilled visits every step once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


class Killed(BaseException):
    """The process died here: nothing catches a BaseException that is not ours to handle."""


class KillPoints:
    def __init__(self, folder: Path, *, at: int | None) -> None:
        self.folder = str(folder.resolve())
        self.at = at
        self.steps: list[str] = []  # every step reached, killed or not, for messages
        self.dead = False
        self._lock = threading.Lock()

    def point(self, name: str) -> None:
        """A kill point of our own: raises Killed if this is the chosen step (or later)."""
        with self._lock:
            if self.dead:
                raise Killed(name)
            number = len(self.steps)
            self.steps.append(name)
            if number == self.at:
                self.dead = True
                raise Killed(name)

    def _ours(self, target: object) -> str | None:
        """The path `target` (a path or a descriptor) names when it is in the folder."""
        if isinstance(target, int):
            try:
                target = os.readlink(f"/proc/self/fd/{target}")
            except OSError:
                return None
        if not isinstance(target, str | os.PathLike):
            return None
        path = str(os.fspath(target))
        inside = path == self.folder or path.startswith(self.folder + os.sep)
        return os.path.relpath(path, self.folder) if inside else None

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            path = self._ours(args[0]) if args else None
            if path is not None:
                self.point(f"{name} {path}")
            return real(*args, **kwargs)

        return call

    @contextmanager
    def active(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[KillPoints]:
        with monkeypatch.context() as patch:
            for name in ("open", "write", "fsync", "rename", "unlink"):
                patch.setattr(os, name, self._wrap(name, getattr(os, name)))
            yield self
