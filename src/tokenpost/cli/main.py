"""`tokenpost`: the command line (DESIGN.md's contract).

Exit codes: 0 done, 1 the operation failed (reason on stderr), 2 bad usage or invalid input,
130 interrupted. Errors print one line, never a traceback (`--debug` adds it) and never a secret.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from tokenpost import __version__
from tokenpost.cli.context import CliContext
from tokenpost.errors import TokenpostError, ValidationError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def _register() -> None:
    from tokenpost.cli import serve_cmd, settings_cmds, setup_cmd, token_cmds

    cli.add_command(settings_cmds.provider)
    cli.add_command(settings_cmds.smtp)
    cli.add_command(settings_cmds.pop)
    cli.add_command(settings_cmds.config)
    cli.add_command(token_cmds.token)
    cli.add_command(serve_cmd.serve)
    cli.add_command(setup_cmd.setup)


_register()


def main() -> None:
    """Run the CLI; map every tokenpost error to its exit code and one line on stderr."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as abort:
        # click turns Ctrl-C into Abort; a declined confirmation is an Abort of its own.
        if isinstance(abort.__context__, KeyboardInterrupt):
            click.echo("tokenpost: interrupted", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except ValidationError as error:
        click.echo(
            f"tokenpost: invalid settings{' for ' + error.subject if error.subject else ''}:",
            err=True,
        )
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(error.exit_code)
    except TokenpostError as error:
        if debug:
            raise
        click.echo(f"tokenpost: error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("tokenpost: interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
