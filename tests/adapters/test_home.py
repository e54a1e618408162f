from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenpost.adapters.home import ForeignHomeError, Home, default_home_path, open_home
from tokenpost.errors import HomeError


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The loosest umask, so only the code can make directories private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TOKENPOST_HOME": "/t/home", "XDG_DATA_HOME": "/x", "HOME": "/u"}, "/t/home"),
        ({"XDG_DATA_HOME": "/x", "HOME": "/u"}, "/x/tokenpost"),
        ({"TOKENPOST_HOME": "", "XDG_DATA_HOME": "/x", "HOME": "/u"}, "/x/tokenpost"),
        ({"XDG_DATA_HOME": "relative/ignored", "HOME": "/u"}, "/u/.local/share/tokenpost"),
        ({"XDG_DATA_HOME": "", "HOME": "/u"}, "/u/.local/share/tokenpost"),
        ({"HOME": "/u"}, "/u/.local/share/tokenpost"),
    ],
)
def test_default_home_path(environ: dict[str, str], expected: str) -> None:
    assert default_home_path(environ) == Path(expected)


def test_explicit_path_wins_over_the_environment(tmp_path: Path) -> None:
    home = open_home(tmp_path / "explicit", {"TOKENPOST_HOME": str(tmp_path / "env")})
    assert home.path == tmp_path / "explicit"
    assert not (tmp_path / "env").exists()


@pytest.mark.usefixtures("open_umask")
def test_new_home_and_parents_are_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "home"
    home = open_home(target, {})
    for directory in (tmp_path / "a", tmp_path / "a" / "b", target, home.lock_dir):
        assert directory.is_dir()
        assert mode_of(directory) == 0o700, directory


def test_existing_parent_keeps_its_mode(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir(mode=0o755)
    parent.chmod(0o755)
    open_home(parent / "home", {})
    assert mode_of(parent) == 0o755


def test_xdg_home_is_created(tmp_path: Path) -> None:
    home = open_home(None, {"XDG_DATA_HOME": str(tmp_path / "data")})
    assert home.path == tmp_path / "data" / "tokenpost"
    assert mode_of(home.path) == 0o700


def test_paths_inside_the_home(tmp_path: Path) -> None:
    home = open_home(tmp_path / "h", {})
    assert home.db_path == tmp_path / "h" / "tokenpost.db"
    assert home.key_path == tmp_path / "h" / "key"
    assert home.lock_dir == tmp_path / "h" / "locks"


def test_key_file_from_the_environment(tmp_path: Path) -> None:
    home = open_home(tmp_path / "h", {"TOKENPOST_KEY_FILE": str(tmp_path / "elsewhere" / "k")})
    assert home.key_path == tmp_path / "elsewhere" / "k"
    assert Home(tmp_path).key_path == tmp_path / "key"


def test_existing_private_home_is_accepted_and_reopened(tmp_path: Path) -> None:
    first = open_home(tmp_path / "h", {})
    (first.path / "marker").write_text("kept")
    second = open_home(tmp_path / "h", {})
    assert second == first
    assert (second.path / "marker").read_text() == "kept"


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o755, 0o777, 0o710])
def test_home_open_to_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "h"
    target.mkdir()
    target.chmod(mode)
    with pytest.raises(HomeError) as caught:
        open_home(target, {})
    assert f"chmod 700 {target}" in str(caught.value)
    assert mode_of(target) == mode  # refused, not repaired behind the administrator's back


def test_lock_dir_open_to_others_is_refused(tmp_path: Path) -> None:
    home = open_home(tmp_path / "h", {})
    home.lock_dir.chmod(0o755)
    with pytest.raises(HomeError, match=f"chmod 700 {home.lock_dir}"):
        open_home(tmp_path / "h", {})


def test_a_file_is_not_a_home(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(HomeError, match="is not a directory") as caught:
        open_home(target, {})
    assert str(target) in str(caught.value)


ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can give a directory to another user"
)


@ROOT_ONLY
def test_a_home_owned_by_another_user_is_refused_for_writing(tmp_path: Path) -> None:
    target = tmp_path / "h"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, -1)
    with pytest.raises(ForeignHomeError) as caught:
        open_home(target, {})
    message = str(caught.value)
    assert f"the home {target} belongs to nobody (uid 65534), not to you (root, uid 0)" in message
    assert "sudo -u nobody tokenpost" in message
    assert caught.value.exit_code == 2
    assert not (target / "locks").exists()  # nothing made in it


@ROOT_ONLY
def test_a_home_owned_by_another_user_is_read_as_it_is(tmp_path: Path) -> None:
    target = tmp_path / "h"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, -1)
    home = open_home(target, {}, writing=False)
    assert home.foreign_owner == 65534
    assert home.path == target
    assert not (target / "locks").exists()
    target.chmod(0o750)
    with pytest.raises(HomeError, match="chmod 700"):
        open_home(target, {}, writing=False)


@ROOT_ONLY
def test_an_owner_without_a_name_is_named_by_uid(tmp_path: Path) -> None:
    target = tmp_path / "h"
    target.mkdir(mode=0o700)
    os.chown(target, 54321, -1)
    with pytest.raises(ForeignHomeError, match=r"belongs to #54321 \(uid 54321\)"):
        open_home(target, {})


def test_ones_own_home_is_not_foreign(tmp_path: Path) -> None:
    assert open_home(tmp_path / "h", {}, writing=False).foreign_owner is None
    assert open_home(tmp_path / "h", {}).foreign_owner is None


@ROOT_ONLY
def test_a_lock_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    home = open_home(tmp_path / "h", {})
    os.chown(home.lock_dir, 12345, -1)
    with pytest.raises(HomeError, match="owned by uid 12345") as caught:
        open_home(tmp_path / "h", {})
    assert str(home.lock_dir) in str(caught.value)


def test_home_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HomeError, match="cannot create"):
        open_home(blocker / "home", {})


def test_home_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    home = open_home(tmp_path / "link", {})
    assert home.lock_dir.is_dir()
    assert (real / "locks").is_dir()
