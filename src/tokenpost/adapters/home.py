"""The home directory: where the store, the key and the flight locks live.

The home holds a database of encrypted tokens and the key that decrypts them, so it must be a
directory that only its owner can enter (mode 0700). It is created that way on first use and
checked on every later use; an unsafe home is refused, never repaired silently.

On the console, the administrator is whoever can read the home: its owner (and root, who can
read anything). Only the owner may change something: every command that opens the home for
writing (`wiring.open_app`: settings, tokens, accounts, `serve`, `setup`, `send`, `receive`…)
is refused with `ForeignHomeError` (exit 2, naming the owner and how to run as them) when the
home belongs to another user than the one running it. Commands that only read (`token status`)
may read another user's home where the system lets them, and change nothing in it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tokenpost.errors import HomeError, UsageError

HOME_ENV: Final = "TOKENPOST_HOME"
KEY_FILE_ENV: Final = "TOKENPOST_KEY_FILE"
_DIR_MODE: Final = 0o700


class ForeignHomeError(UsageError):
    """The home belongs to another user: only its owner may change something in it (exit 2)."""


@dataclass(frozen=True, slots=True)
class Home:
    """A checked home directory. `key_file` overrides where the key lives (TOKENPOST_KEY_FILE).
    `foreign_owner` is the owner's uid of a home opened for reading that is not the caller's
    (None: the caller's own home)."""

    path: Path
    key_file: Path | None = None
    foreign_owner: int | None = None

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


def open_home(path: Path | None, environ: Mapping[str, str], *, writing: bool = True) -> Home:
    """Find, create or check the home directory and its lock directory.

    Args:
        path: an explicit home (``--home``); None looks at `environ`.
        environ: the process environment (TOKENPOST_HOME, XDG_DATA_HOME, TOKENPOST_KEY_FILE).
        writing: the caller may change something in the home. False (a command that only
            reads) accepts another user's home, and creates nothing in it.

    Raises:
        ForeignHomeError: `writing`, and the home belongs to another user.
        HomeError: the home (or its lock directory) is not a directory, not owned by the current
            user (the lock directory; the home when not `writing`: another user's is read as it
            is), or open to group or others; or it cannot be created.
    """
    home_path = (path if path is not None else default_home_path(environ)).expanduser()
    key_file = environ.get(KEY_FILE_ENV)
    key_path = Path(key_file).expanduser() if key_file else None
    owner = _owner(home_path)
    if owner is not None and owner != os.geteuid():
        if writing:
            raise foreign_home(home_path, owner)
        _check_private(home_path, _stat(home_path), owner=owner)
        if not os.access(home_path, os.R_OK | os.X_OK):
            raise HomeError(
                "cannot read the home {path}: it belongs to {owner}; run the command as that"
                " user (sudo -u {owner} tokenpost …)",
                path=str(home_path),
                owner=_user_name(owner),
            )
        return Home(path=home_path, key_file=key_path, foreign_owner=owner)
    ensure_private_dir(home_path)
    home = Home(path=home_path, key_file=key_path)
    ensure_private_dir(home.lock_dir)
    return home


def foreign_home(path: Path, owner: int) -> ForeignHomeError:
    """The refusal to change a home that belongs to another user, with who owns it and how to
    run as them."""
    return ForeignHomeError(
        "the home {path} belongs to {owner} (uid {owner_uid}), not to you ({user}, uid"
        " {user_uid}): on the console only the home's owner may change settings, tokens or"
        " accounts. Run the command as that user (sudo -u {owner} tokenpost …), or use a home"
        " of your own (--home)",
        path=str(path),
        owner=_user_name(owner),
        owner_uid=owner,
        user=_user_name(os.geteuid()),
        user_uid=os.geteuid(),
    )


def _owner(path: Path) -> int | None:
    """The uid owning the existing directory `path` (symlinks followed); None when it does not
    exist yet or is not a directory (`ensure_private_dir` reports those)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_uid if stat.S_ISDIR(info.st_mode) else None


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"  # no such user: sudo takes #UID too


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with mode 0700, or check that it is private.

    Raises:
        HomeError: naming the path and the fix.
    """
    try:
        _make_dirs(path)
    except OSError as exc:
        raise _unusable(path, exc) from exc
    _check_private(path, _stat(path), owner=os.geteuid())


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise _unusable(path, exc) from exc


def _unusable(path: Path, exc: OSError) -> HomeError:
    return HomeError(
        "cannot create or read the directory {path}: {reason}",
        path=str(path),
        reason=exc.strerror or str(exc),
    )


def _check_private(path: Path, info: os.stat_result, *, owner: int) -> None:
    """Raises HomeError unless `path` is a directory of `owner` closed to group and others."""
    if not stat.S_ISDIR(info.st_mode):
        raise HomeError(
            "{path} is not a directory; remove it or choose another home", path=str(path)
        )
    if info.st_uid != owner:
        raise HomeError(
            "{path} is owned by uid {owner}, not by the current user (uid {user});"
            " use a home of your own or run as its owner",
            path=str(path),
            owner=info.st_uid,
            user=os.geteuid(),
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
