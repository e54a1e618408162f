"""On the console, the administrator is whoever can read the home: its owner may change anything,
another user (here root, who can read every home) may only look. Through the real CLI: a home
given to another user (uid 65534, nobody) refuses every command that changes something with exit
2, the reason and the fix, changes nothing in it, and still answers the commands that only read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import Cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a home to another user"),
]

OWNER = 65534  # nobody
PASSWORD = "s3cret horse battery"


def _give_away(home: Path) -> dict[str, tuple[int, int, int]]:
    """chown -R the home to `OWNER`; what every file in it is now (owner, size, mtime)."""
    for path in [home, *home.rglob("*")]:
        os.chown(path, OWNER, OWNER, follow_symlinks=False)
    return _files(home)


def _files(home: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    for path in [home, *home.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(home))] = (info.st_uid, info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def foreign(cli: Cli, tmp_path: Path) -> Cli:
    """A home with a provider, the SMTP setting, a POP setting and a web account, then given to
    another user."""
    cli.ok(
        "provider", "add", "m365", "--preset", "microsoft", "--tenant", "contoso.example",
        "--client-id", "00000000-0000-0000-0000-000000000000",
    )  # fmt: skip
    cli.ok(
        "smtp", "set", "--server", "smtp.example.test", "--port", "587", "--security",
        "starttls", "--timeout", "30", "--sender-name", "Scanner", "--sender-address",
        "scanner@example.test", "--auth", "oauth2", "--provider", "m365", "--account",
        "scanner@example.test",
    )  # fmt: skip
    inbox = tmp_path / "inbox"
    cli.ok(
        "pop", "add", "fax", "--server", "pop.example.test", "--port", "995", "--security",
        "tls", "--check-interval", "300", "--auth", "oauth2", "--provider", "m365",
        "--account", "fax@example.test", "--deliver-to", str(inbox),
    )  # fmt: skip
    cli.ok("admin", "add", "alice", "--password", "-", stdin=PASSWORD + "\n")
    return cli


def test_every_command_that_changes_something_is_refused(foreign: Cli, tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(foreign.ok("config", "export"))
    attachment = tmp_path / "scan.pdf"
    attachment.write_bytes(b"%PDF-1.4\n")
    before = _give_away(foreign.home)
    changing = [
        ["provider", "add", "g", "--preset", "google", "--client-id", "x"],
        ["provider", "remove", "m365"],
        ["smtp", "set", "--timeout", "60"],
        ["pop", "remove", "fax", "--yes"],
        ["alerts", "set", "--to", "ops@example.test"],
        ["alerts", "clear"],
        ["config", "import", str(config)],
        ["token", "get", "smtp", "--json", "--yes"],
        ["token", "delete", "pop:fax", "--yes"],
        ["token", "refresh", "smtp"],
        ["token", "show", "smtp"],
        ["check", "smtp"],
        ["send", "--to", "office@example.test", str(attachment)],
        ["receive", "fax"],
        ["serve"],
        ["setup"],
        ["admin", "add", "bob", "--password", "-"],
        ["admin", "passwd", "alice", "--password", "-"],
        ["admin", "remove", "alice", "--yes"],
        ["admin", "token", "create", "ci"],
        ["admin", "token", "revoke", "ci"],
    ]
    for args in changing:
        result = foreign.run(*args, stdin=PASSWORD + "\n", timeout=60)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"the home {foreign.home} belongs to nobody (uid 65534)" in result.stderr, args
        assert "Run the command as that user (sudo -u nobody tokenpost" in result.stderr, args
    assert _files(foreign.home) == before  # nothing created, changed or given to root
    german = foreign.run("--lang", "de", "admin", "token", "create", "ci")
    assert german.returncode == 2
    assert "Auf der Konsole darf nur der Eigentümer" in german.stderr


def test_commands_that_only_read_still_answer(foreign: Cli) -> None:
    _give_away(foreign.home)
    status = foreign.run("token", "status", "--json")
    assert status.returncode == 3, status.stderr  # no token serves mail yet
    assert [row["id"] for row in json.loads(status.stdout)["settings"]] == ["smtp", "pop:fax"]
    accounts = json.loads(foreign.ok("admin", "list", "--json"))["accounts"]
    assert [(a["name"], a["role"]) for a in accounts] == [("alice", "administrator")]
    assert json.loads(foreign.ok("admin", "token", "list", "--json"))["api_tokens"] == []
    assert foreign.ok("provider", "list").startswith("m365\t")
    assert json.loads(foreign.ok("pop", "list", "--json"))["pop"][0]["name"] == "fax"
    assert "smtp.example.test" in foreign.ok("smtp", "show")
    assert "[smtp]" in foreign.ok("config", "export")
    assert foreign.ok("alerts", "show")
    for path in [foreign.home, *foreign.home.rglob("*")]:
        assert path.lstat().st_uid == OWNER, path  # what SQLite made to read is the owner's


def test_a_store_that_would_need_creating_is_left_to_the_owner(cli: Cli) -> None:
    cli.home.mkdir(mode=0o700)
    os.chown(cli.home, OWNER, OWNER)
    result = cli.run("token", "status")
    assert result.returncode == 2, result.stderr
    assert "belongs to nobody" in result.stderr
    assert list(cli.home.iterdir()) == []


def test_the_owner_may_change_it_again(foreign: Cli) -> None:
    _give_away(foreign.home)
    for path in [foreign.home, *foreign.home.rglob("*")]:
        os.chown(path, 0, 0, follow_symlinks=False)
    foreign.ok("admin", "token", "create", "ci")
