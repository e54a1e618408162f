"""`tokenpost`: the command line (DESIGN.md's contract).

Exit codes: 0 done, 1 the operation failed (reason on stderr), 2 bad usage or invalid input,
130 interrupted. Errors print one line, never a traceback (`--debug` adds it) and never a secret.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tokenpost import __version__
from tokenpost.cli.context import CliContext
from tokenpost.cli.translated import TranslatedCommand, TranslatedGroup
from tokenpost.errors import TokenpostError, ValidationError


@dataclass(frozen=True, slots=True)
class Lazy:
    """A command imported only when it runs: "module:attribute", and its help (the same text as
    the command's docstring, checked by a test), so that the command list needs no import."""

    target: str
    help: str


class LazyGroup(TranslatedGroup):
    """Imports a command's module only when that command runs; `--help` lists the commands
    from their `Lazy` help alone: start-up time is part of the contract (bench/startup.py)."""

    def __init__(self, *args: Any, lazy: dict[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self._lazy.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # a line of the command list: its help is all it needs
            return TranslatedCommand(cmd_name, help=lazy.help)
        module_name, attribute = lazy.target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)  # noqa: S101 - a programming error otherwise
        return command


_COMMANDS = {
    "provider": Lazy(
        "tokenpost.cli.provider_cmds:provider",
        "Where tokens come from: microsoft, google, or any OAuth 2.0 provider.",
    ),
    "smtp": Lazy(
        "tokenpost.cli.settings_cmds:smtp",
        "The one SMTP setting; its token serves every function that sends mail.",
    ),
    "pop": Lazy(
        "tokenpost.cli.settings_cmds:pop",
        "POP settings (Internet fax receive, e-mail print…); each has its own token.",
    ),
    "config": Lazy("tokenpost.cli.config_cmds:config", "Settings as TOML, for version control."),
    "alerts": Lazy(
        "tokenpost.cli.alerts_cmd:alerts",
        "Who hears about token and receive trouble: alert mail recipients and a hook command.",
    ),
    "token": Lazy(
        "tokenpost.cli.token_cmds:token",
        "Obtain, show, refresh and delete the tokens of OAuth 2.0 settings.",
    ),
    "serve": Lazy(
        "tokenpost.cli.serve_cmd:serve",
        "Keep tokens fresh, finish pending device authorizations, receive on each POP setting's"
        "\n    schedule and send alerts, and serve the web page, until stopped (SIGTERM, Ctrl-C).",
    ),
    "setup": Lazy(
        "tokenpost.cli.setup_cmd:setup",
        "Guided set-up of the SMTP setting with OAuth 2.0, then obtain its token.",
    ),
    "check": Lazy(
        "tokenpost.cli.check_cmd:check",
        "Connection test for SETTING: connect, TLS, greeting, token, authenticate, quit.",
    ),
    "send": Lazy(
        "tokenpost.cli.send_cmd:send",
        "Send FILEs as attachments (and a text) from the SMTP setting's sender address.",
    ),
    "receive": Lazy(
        "tokenpost.cli.receive_cmd:receive",
        "Fetch new mail now for the POP setting NAME (fax or pop:fax), or for every POP setting.",
    ),
    "admin": Lazy(
        "tokenpost.cli.admin_cmds:admin",
        "Web accounts and API tokens: who may use the web page and the JSON API. An administrator"
        "\n    may do everything, a viewer only looks.",
    ),
    "demo": Lazy(
        "tokenpost.cli.demo_cmd:demo",
        "Try tokenpost on this machine, offline: a sandbox provider, SMTP and POP3 servers and the"
        "\n    web page in a throw-away directory. Ctrl-C stops it and removes everything it made.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TOKENPOST_HOME",
    help="Data directory (default: $XDG_DATA_HOME/tokenpost). Created 0700.",
)
@click.option("--lang", help="Language of the output: en or de (default: TOKENPOST_LANG, locale).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs (never secrets).")
@click.version_option(__version__, prog_name="tokenpost")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, lang: str | None, debug: bool) -> None:
    """OAuth 2.0 e-mail for devices: tokens for SMTP and POP3 settings."""
    from tokenpost.i18n import resolve_language

    ctx.obj = CliContext(home=home, lang=resolve_language(lang, os.environ), debug=debug)


def _language_flag(argv: list[str]) -> str | None:
    """The value of ``--lang`` among the root options, read before click parses anything."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.partition("=")[2]
    return None


def _set_language(argv: list[str]) -> None:
    """Set the process's language first, so that even click's parsing errors are translated. A
    bad ``--lang`` falls back to the environment's here; the root callback reports it."""
    from tokenpost.errors import UsageError
    from tokenpost.i18n import resolve_language, use_language

    try:
        lang = resolve_language(_language_flag(argv), os.environ)
    except UsageError:
        lang = resolve_language(None, os.environ)
    use_language(lang)


def _undecodable_argument(argv: list[str]) -> tuple[int, str | None, bool] | None:
    """The first argument that is not UTF-8 text, as (its number, the option before it or in
    it, whether the option is in it), or None.

    Python decodes the command line with surrogateescape: bytes that are not UTF-8 become lone
    surrogates, which nothing downstream can encode or show. The argument's value is never
    shown: it may be a secret (--password, --client-secret). A path to a file that exists is
    not text but a name, which POSIX allows to be any bytes (a scan `send` attaches, a
    `--body-file`): it passes, and the commands that use it keep its bytes.
    """
    for index, arg in enumerate(argv):
        if _is_text(arg) or os.path.lexists(arg):
            continue
        option, equals, _value = arg.partition("=")
        if equals and option.startswith("--") and _is_text(option):
            return index + 1, option, True
        before = argv[index - 1] if index > 0 else ""
        return index + 1, before if before.startswith("-") and before != "--" else None, False
    return None


def _is_text(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_undecodable(argv: list[str], gettext: Callable[[str], str]) -> None:
    """Exit 2 with one line naming the first argument that is not UTF-8 text."""
    found = _undecodable_argument(argv)
    if found is None:
        return
    _ = gettext
    number, option, inside = found
    if option is None:
        where = _("argument {number}").format(number=number)
    elif inside:
        where = _("argument {number} ({option}=…)").format(number=number, option=option)
    else:
        where = _("argument {number} (after {option})").format(number=number, option=option)
    message = _("tokenpost: {argument} is not valid UTF-8 text; give it in UTF-8")
    click.echo(message.format(argument=where), err=True)
    sys.exit(2)


def main() -> None:
    """Run the CLI; map every tokenpost error to its exit code and one line on stderr."""
    debug = "--debug" in sys.argv[1:]
    _set_language(sys.argv[1:])
    from tokenpost.i18n import active, show

    _ = active().gettext
    _refuse_undecodable(sys.argv[1:], _)
    try:
        # Outside standalone mode click returns the code of `ctx.exit(code)` instead of exiting.
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Abort as abort:
        # click turns Ctrl-C into Abort; a declined confirmation is an Abort of its own.
        if isinstance(abort.__context__, KeyboardInterrupt):
            click.echo(_("tokenpost: interrupted"), err=True)
            sys.exit(130)
        click.echo(_("Aborted."), err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except ValidationError as error:
        if error.subject:
            subject = show(error.subject)
            title = _("tokenpost: invalid settings for {subject}:").format(subject=subject)
        else:
            title = _("tokenpost: invalid settings:")
        click.echo(title, err=True)
        for problem in error.problems:
            click.echo(f"  {problem.translate(_)}", err=True)
        sys.exit(error.exit_code)
    except TokenpostError as error:
        if debug:
            raise
        click.echo(_("tokenpost: error: {message}").format(message=error.translate(_)), err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo(_("tokenpost: interrupted"), err=True)
        sys.exit(130)
    sys.exit(0)
