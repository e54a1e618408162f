"""`tokenpost admin …` through the real CLI: web accounts and API tokens, passwords asked on a
real terminal (a pseudo-terminal) or read from standard input, and no password or token in any
output but the one that shows a new API token."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sqlite3
import sys
import termios
import time

import pytest
from cli_support import Cli

pytestmark = pytest.mark.slow

PASSWORD = "s3cret horse battery"
OTHER = "another long passphrase"


def add(cli: Cli, name: str, *extra: str, password: str = PASSWORD) -> str:
    return cli.ok("admin", "add", name, *extra, "--password", "-", stdin=password + "\n")


def test_accounts_are_added_listed_changed_and_removed(cli: Cli) -> None:
    assert "Web account alice added (administrator)." in add(cli, "alice")
    assert "(viewer)" in add(cli, "vera", "--viewer")
    table = cli.ok("admin", "list").splitlines()
    assert [line.split("\t")[:2] for line in table] == [
        ["alice", "administrator"],
        ["vera", "viewer"],
    ]
    data = json.loads(cli.ok("admin", "list", "--json"))
    assert data["format_version"] == 1
    assert [(a["name"], a["role"]) for a in data["accounts"]] == [
        ("alice", "administrator"),
        ("vera", "viewer"),
    ]
    assert isinstance(data["accounts"][0]["created_at"], float)
    out = cli.ok("admin", "passwd", "vera", "--password", "-", stdin=OTHER + "\n")
    assert "Password of web account vera changed." in out
    assert "removed" in cli.ok("admin", "remove", "vera", "--yes")
    assert [a["name"] for a in json.loads(cli.ok("admin", "list", "--json"))["accounts"]] == [
        "alice"
    ]
    assert PASSWORD not in cli.all_output()
    assert OTHER not in cli.all_output()


def test_the_last_administrator_stays(cli: Cli) -> None:
    add(cli, "alice")
    add(cli, "vera", "--viewer")
    refused = cli.run("admin", "remove", "alice", "--yes")
    assert refused.returncode == 2
    assert "'alice' is the last administrator" in refused.stderr
    assert "tokenpost admin add NAME" in refused.stderr
    german = cli.run("--lang", "de", "admin", "remove", "alice", "--yes")
    assert german.returncode == 2
    assert "ist der letzte Administrator" in german.stderr


def test_bad_input_exits_2_naming_the_rule_and_the_fix(cli: Cli) -> None:
    short = cli.run("admin", "add", "alice", "--password", "-", stdin="short\n")
    assert short.returncode == 2
    assert "password: must be 12 to 1024 characters long" in short.stderr
    bad_name = cli.run("admin", "add", "bad name", "--password", "-", stdin=PASSWORD + "\n")
    assert bad_name.returncode == 2
    assert "name: must be 1 to 64 characters" in bad_name.stderr
    on_line = cli.run("admin", "add", "alice", "--password", PASSWORD)
    assert on_line.returncode == 2
    assert "--password takes only '-'" in on_line.stderr
    assert PASSWORD not in on_line.stderr + on_line.stdout
    no_terminal = cli.run("admin", "add", "alice")  # standard input is not a terminal
    assert no_terminal.returncode == 2
    assert "give --password -" in no_terminal.stderr
    empty = cli.run("admin", "passwd", "alice", "--password", "-", stdin="\n")
    assert empty.returncode == 2
    unknown = cli.run("admin", "passwd", "nobody", "--password", "-", stdin=PASSWORD + "\n")
    assert unknown.returncode == 2
    assert "there is no web account 'nobody'" in unknown.stderr
    add(cli, "alice")
    taken = cli.run("admin", "add", "alice", "--password", "-", stdin=OTHER + "\n")
    assert taken.returncode == 2
    assert "already a web account 'alice'" in taken.stderr
    german = cli.run("--lang", "de", "admin", "add", "x", "--password", "-", stdin="kurz\n")
    assert german.returncode == 2
    assert "muss 12 bis 1024 Zeichen lang sein" in german.stderr


def test_api_tokens_are_shown_once_on_standard_output_only(cli: Cli) -> None:
    created = cli.run("admin", "token", "create", "backup", "--viewer")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("tpat_")
    assert created.stdout == token + "\n"  # nothing else on standard output
    assert "shown only this once" in created.stderr
    assert token not in created.stderr
    listed = cli.ok("admin", "token", "list")
    assert listed.split("\t")[:2] == ["backup", "viewer"]
    data = json.loads(cli.ok("admin", "token", "list", "--json"))
    assert [(t["name"], t["role"]) for t in data["api_tokens"]] == [("backup", "viewer")]
    assert token not in cli.ok("admin", "token", "list", "--json")
    assert "API token backup revoked." in cli.ok("admin", "token", "revoke", "backup")
    again = cli.run("admin", "token", "revoke", "backup")
    assert again.returncode == 2
    assert "there is no API token 'backup'" in again.stderr
    assert cli.all_output().count(token) == 1
    database = cli.home / "tokenpost.db"
    assert token.encode() not in database.read_bytes()


def test_a_role_changed_in_the_database_is_refused_and_named(cli: Cli) -> None:
    add(cli, "alice")
    add(cli, "vera", "--viewer")
    cli.ok("admin", "token", "create", "ci", "--viewer")
    with sqlite3.connect(cli.home / "tokenpost.db") as db:
        db.execute("UPDATE web_accounts SET role = 'administrator' WHERE name = 'vera'")
        db.execute("UPDATE api_tokens SET role = 'administrator'")
    db.close()
    listed = cli.run("admin", "list")
    assert listed.returncode == 0
    assert listed.stdout.split("\t")[0] == "alice"
    assert "vera" not in listed.stdout
    assert "account:vera is damaged" in listed.stderr
    assert "tokenpost admin remove vera" in listed.stderr
    tokens = cli.run("admin", "token", "list")
    assert tokens.stdout == ""
    assert "api_token:ci is damaged" in tokens.stderr
    cli.ok("admin", "remove", "vera", "--yes")  # a damaged account can be removed
    assert "damaged" not in cli.run("admin", "list").stderr


def test_the_help_is_in_german_too(cli: Cli) -> None:
    out = cli.ok("--lang", "de", "admin", "--help")
    assert "Web-Konten und API-Token" in out
    assert "ein Betrachter schaut nur" in out
    out = cli.ok("--lang", "de", "admin", "token", "create", "--help")
    assert "nur diese Ausgabe zeigt es je" in out


# --- on a terminal ------------------------------------------------------------------------------


def _echo_is_off(fd: int) -> bool:
    """True once the program hides what is typed (click writes the prompt before it turns the
    terminal's echo off; what is typed before that would be flushed away)."""
    return not termios.tcgetattr(fd)[3] & termios.ECHO


def _on_terminal(cli: Cli, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling terminal; type each answer after
    the next prompt ending in ': '. Returns the exit code and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        os.execve(sys.executable, [sys.executable, "-m", "tokenpost", *args], cli.env())  # noqa: S606
    shown = b""
    pending = list(answers)
    answered = 0  # how much had been shown when the last answer was typed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            shown += chunk
        asked = len(shown) > answered and shown.rstrip().endswith(b":")
        if pending and asked and _echo_is_off(fd):
            os.write(fd, pending.pop(0).encode() + b"\n")
            answered = len(shown)
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = shown.decode(errors="replace")
    cli.outputs.append(text)
    return os.waitstatus_to_exitcode(status), text


def test_on_a_terminal_the_password_is_asked_twice_hidden(cli: Cli) -> None:
    code, shown = _on_terminal(cli, ["admin", "add", "alice"], [PASSWORD, PASSWORD])
    assert code == 0, shown
    assert "Password for alice:" in shown
    assert "The same password again:" in shown
    assert "Web account alice added (administrator)." in shown
    assert PASSWORD not in shown  # never echoed
    code, shown = _on_terminal(cli, ["admin", "passwd", "alice"], [OTHER, OTHER + "!"])
    assert code == 2, shown
    assert "the two passwords differ; nothing was changed" in shown
    assert OTHER not in shown
    code, shown = _on_terminal(cli, ["admin", "passwd", "alice"], ["too short"])
    assert code == 2, shown
    assert "password: must be 12 to 1024 characters long" in shown


def test_nothing_secret_reaches_the_debug_log(cli: Cli) -> None:
    add(cli, "alice")
    debug = cli.run("--debug", "admin", "passwd", "alice", "--password", "-", stdin=OTHER + "\n")
    assert debug.returncode == 0, debug.stderr
    created = cli.run("--debug", "admin", "token", "create", "ci")
    token = created.stdout.strip()
    assert token not in created.stderr
    for secret in (PASSWORD, OTHER):
        assert secret not in cli.all_output()
