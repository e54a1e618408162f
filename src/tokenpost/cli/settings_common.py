"""What the settings commands share: secrets from standard input, path options, and the lines
that report discarded tokens and damaged records."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext
from tokenpost.errors import UsageError
from tokenpost.secret import Secret

if TYPE_CHECKING:
    from tokenpost.ports import DamagedRecord
    from tokenpost.services.settings import DiscardedToken


def secret_option(value: str | None, option: str) -> Secret | None:
    """A secret given on the command line, or '-' to read it from standard input (keeps it out
    of the process list and shell history)."""
    if value is None:
        return None
    if value == "-":
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("{option} -: nothing on standard input", option=option)
        return Secret(line)
    return Secret(value)


def choice(enum: type[Any]) -> click.Choice[str]:
    return click.Choice([m.value for m in enum])


def echo_json(data: dict[str, object]) -> None:
    click.echo(json.dumps({"format_version": 1, **data}))


def echo_discarded(ctx: CliContext, discarded: Iterable[DiscardedToken]) -> None:
    """One line per token a change discarded, with what revoking it gave."""
    from tokenpost.i18n import show

    _ = ctx.gettext
    for token in discarded:
        line = _("The token of {setting} was discarded ({detail}).")
        click.echo(line.format(setting=token.setting_id, detail=show(token.detail, ctx.lang)))


def echo_damaged(ctx: CliContext, damaged: Iterable[DamagedRecord], prefix: str) -> None:
    """On standard error: each damaged record whose id starts with `prefix`."""
    from tokenpost.i18n import show

    _ = ctx.gettext
    for record in damaged:
        if record.record_id.startswith(prefix):
            line = _("{record} is damaged: {reason}")
            click.echo(line.format(record=record.record_id, reason=show(record.reason)), err=True)


def absolute(path: str | None) -> str | None:
    """A path option made absolute; '' stays '' (the rules refuse it where a path is needed,
    and for a CA file it means "none")."""
    if not path:
        return path
    return str(Path(path).expanduser().resolve())


def ca_file_option(value: str | None) -> str | None:
    """--ca-file: '' clears the setting (None), anything else is made absolute."""
    return absolute(value) or None
