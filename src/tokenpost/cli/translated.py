"""Click commands whose help is shown in the process's language.

A command's help is its docstring and its options' ``help=`` strings, written in English: they
are the msgids. `TranslatedCommand` and `TranslatedGroup` translate them (with `i18n.active`) only
while a help page or a command list is being formatted, and put the English back afterwards, so
the command objects stay as declared. Every command and group of the CLI uses these classes (the
root group passes them on to what it creates, command modules use `group` and `command` from
here); a test walks the command tree and checks that each help string has a German translation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

_F = TypeVar("_F", bound=Callable[..., Any])


@contextlib.contextmanager
def _translated(command: click.Command, ctx: click.Context | None) -> Iterator[None]:
    """Swap the help of `command` and of its parameters for their translations, then restore."""
    from tokenpost.i18n import active

    gettext = active().gettext
    params = list(command.params) if ctx is None else command.get_params(ctx)
    saved: list[tuple[object, str, str | None]] = [(command, "help", command.help)]
    saved += [(command, "short_help", command.short_help)]
    saved += [(p, "help", p.help) for p in params if isinstance(p, click.Option)]
    try:
        for owner, attribute, english in saved:
            if english:
                setattr(owner, attribute, gettext(english))
        yield
    finally:
        for owner, attribute, english in saved:
            setattr(owner, attribute, english)


class _TranslatedHelp(click.Command):
    """The help page and the short help of a command, formatted with its texts translated."""

    def get_help(self, ctx: click.Context) -> str:
        with _translated(self, ctx):
            return super().get_help(ctx)

    def get_short_help_str(self, limit: int = 45) -> str:
        with _translated(self, None):
            return super().get_short_help_str(limit)


class TranslatedCommand(_TranslatedHelp):
    """A command whose help page and short help are translated."""


class TranslatedGroup(_TranslatedHelp, click.Group):
    """A group like `TranslatedCommand`; commands and groups made through it are translated too."""

    command_class = TranslatedCommand
    group_class = type  # subgroups are of the same class as their parent


def group(**attrs: Any) -> Callable[[_F], TranslatedGroup]:
    """`click.group` making a `TranslatedGroup`."""
    return click.group(cls=TranslatedGroup, **attrs)


def command(**attrs: Any) -> Callable[[_F], TranslatedCommand]:
    """`click.command` making a `TranslatedCommand`."""
    return click.command(cls=TranslatedCommand, **attrs)
