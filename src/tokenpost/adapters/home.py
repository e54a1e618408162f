"""The home directory: where the store, the key and the flight locks live.

The home holds a database of encrypted tokens and the key that decrypts them, so it must be a
directory that only its owner can enter (mode 0700). It is created that way on first use and
checked on every later use; an unsafe home is refused, never repaired silently.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tokenpost.errors import HomeError

HOME_ENV: Final = "TOKENPOST_HOME"
KEY_FILE_ENV: Final = "TOKENPOST_KEY_FILE"
_DIR_MODE: Final = 0o700


@dataclass(frozen=True, slots=True)
class Home:
    """A checked home directory. `key_file` overrides where the key lives (TOKENPOST_KEY_FILE)."""

    path: Path
    key_file: Path | None = None

    @property
    def db_path(self) -> Path:
        return self.path / "tokenpost.db"

    @property
    def key_path(self) -> Path:
        return self.key_file if self.key_file is not None else self.path / "key"

    @property
    def lock_dir(self) -> Path:
        return self.path / "locks"


def default_home_path(environ: Mapping[str, str]) -> Path:
    """TOKENPOST_HOME, else $XDG_DATA_HOME/tokenpost, else $HOME/.local/share/tokenpost."""
    if environ.get(HOME_ENV):
        return Path(environ[HOME_ENV])
    xdg = environ.get("XDG_DATA_HOME")
    # The XDG Base Directory spec says relative values are invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "tokenpost"
    user_home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return user_home / ".local" / "share" / "tokenpost"


def open_home(path: Path | None, environ: Mapping[str, str]) -> Home:
    """Find, create or check the home directory and its lock directory.

    Args:
        path: an explicit home (``--home``); None looks at `environ`.
        environ: the process environment (TOKENPOST_HOME, XDG_DATA_HOME, TOKENPOST_KEY_FILE).

    Raises:
        HomeError: the home (or its lock directory) is not a directory, not owned by the current
            user, or open to group or others; or it cannot be created.
    """
    home_path = (path if path is not None else default_home_path(environ)).expanduser()
    ensure_private_dir(home_path)
    key_file = environ.get(KEY_FILE_ENV)
    home = Home(path=home_path, key_file=Path(key_file).expanduser() if key_file else None)
    ensure_private_dir(home.lock_dir)
    return home


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with mode 0700, or check that it is private.

    Raises:
        HomeError: naming the path and the fix.
    """
    try:
        _make_dirs(path)
        info = path.stat()
    except OSError as exc:
        raise HomeError(
            "cannot create or read the directory {path}: {reason}",
            path=str(path),
            reason=exc.strerror or str(exc),
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise HomeError(
            "{path} is not a directory; remove it or choose another home", path=str(path)
        )
    if info.st_uid != os.getuid():
        raise HomeError(
            "{path} is owned by uid {owner}, not by the current user (uid {user});"
            " use a home of your own or run as its owner",
            path=str(path),
            owner=info.st_uid,
            user=os.getuid(),
        )
    if info.st_mode & 0o077:
        mode = format(stat.S_IMODE(info.st_mode), "04o")
        raise HomeError(
            "{path} is open to other users (mode {mode}); fix it with: chmod 700 {path}",
            path=str(path),
            mode=mode,
        )


def _make_dirs(path: Path) -> None:
    """mkdir -p with mode 0700 for every directory created (Path.mkdir gives parents 0777)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=_DIR_MODE)
        except FileExistsError:
            continue  # created concurrently; it is checked like any existing home
        # mkdir's mode is filtered by the umask; 0700 must hold whatever the umask is.
        directory.chmod(_DIR_MODE)
