"""`tokenpost --help` lists every command without importing one (issue 10, item 5): the list is
made from each command's `Lazy` help, which must be the command's own help, word for word (its
German translation is the command's too)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from tokenpost.cli.main import _COMMANDS, cli

LOADED = (
    "import sys, runpy\n"
    "sys.argv = ['tokenpost', '--lang', '{lang}', '--help']\n"
    "try:\n"
    "    runpy.run_module('tokenpost', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print(' '.join(sorted(m for m in sys.modules if m.startswith('tokenpost.cli.'))),"
    " file=sys.stderr)\n"
)


@pytest.mark.parametrize("name", sorted(_COMMANDS))
def test_the_listed_help_is_the_command_s_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert _COMMANDS[name].help == command.help


@pytest.mark.parametrize("lang", ["en", "de"])
def test_help_imports_no_command_and_lists_every_one(lang: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(lang=lang)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = done.stderr.split()
    assert [m for m in loaded if m.endswith(("_cmd", "_cmds"))] == []
    listed = [line.split()[0] for line in done.stdout.split("\n\n")[-1].splitlines()[1:]]
    assert listed == sorted(_COMMANDS)
    if lang == "de":
        assert "Token von OAuth-2.0-Einstellungen abrufen" in done.stdout
