"""`admin add | passwd | list | remove` and `admin token create | list | revoke`: who may use
the web page and the JSON API.

A password is asked twice, hidden, on a terminal; `--password -` reads one line from standard
input instead (for scripts). It is never taken from the command line (the process list would
show it). An API token is printed once, alone on standard output, and never again: only its
SHA-256 digest is kept. No password or token is ever printed anywhere else or logged.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

import click

from tokenpost.accounts import Account, ApiTokenInfo, Role
from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.settings_common import echo_damaged, echo_json
from tokenpost.cli.translated import group
from tokenpost.errors import UsageError
from tokenpost.secret import Secret
from tokenpost.text import N_

if TYPE_CHECKING:
    from tokenpost.ports import DamagedRecord
    from tokenpost.wiring import App

ROLE_LABELS: Final = {Role.ADMIN: N_("administrator"), Role.VIEWER: N_("viewer")}
_FROM_STDIN_HELP: Final = (
    "'-' reads the password from standard input (one line); without it the password is asked"
    " twice on the terminal"
)


@group()
def admin() -> None:
    """Web accounts and API tokens: who may use the web page and the JSON API. An administrator
    may do everything, a viewer only looks."""


@admin.command("add")
@click.argument("name")
@click.option("--viewer", is_flag=True, help="A viewer: sees everything, changes nothing.")
@click.option("--password", "password_source", metavar="-", help=_FROM_STDIN_HELP)
@pass_cli
def admin_add(ctx: CliContext, name: str, viewer: bool, password_source: str | None) -> None:
    """Add web account NAME (an administrator unless --viewer)."""
    from tokenpost.accounts import check_account

    _ = ctx.gettext
    check_account(name)
    password = _new_password(ctx, name, password_source)
    role = Role.VIEWER if viewer else Role.ADMIN
    ctx.run(lambda app: app.accounts.add(name, role, password))
    label = _(ROLE_LABELS[role])
    click.echo(_("Web account {name} added ({role}).").format(name=name, role=label))


@admin.command("passwd")
@click.argument("name")
@click.option("--password", "password_source", metavar="-", help=_FROM_STDIN_HELP)
@pass_cli
def admin_passwd(ctx: CliContext, name: str, password_source: str | None) -> None:
    """Give web account NAME a new password."""
    _ = ctx.gettext
    password = _new_password(ctx, name, password_source)
    ctx.run(lambda app: app.accounts.set_password(name, password))
    click.echo(_("Password of web account {name} changed.").format(name=name))


@admin.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@pass_cli
def admin_list(ctx: CliContext, as_json: bool) -> None:
    """List the web accounts with their roles (damaged ones on standard error)."""

    async def work(app: App) -> tuple[list[Account], list[DamagedRecord]]:
        return await app.accounts.list(), await app.accounts.damaged()

    accounts, damaged = ctx.run(work, writes=False)
    if as_json:
        echo_json({"accounts": [_entry(a) for a in accounts]})
    else:
        for account in accounts:
            click.echo("\t".join(_row(ctx, account)))
    echo_damaged(ctx, damaged, "account:")


@admin.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def admin_remove(ctx: CliContext, name: str, yes: bool) -> None:
    """Remove web account NAME (refused for the last administrator)."""
    from tokenpost.cli.prompts import confirm

    _ = ctx.gettext
    if not yes:
        confirm(_("Remove the web account {name}?").format(name=name), abort=True)
    ctx.run(lambda app: app.accounts.remove(name))
    click.echo(_("Web account {name} removed.").format(name=name))


# --- API tokens -----------------------------------------------------------------------------------


@admin.group("token")
def admin_token() -> None:
    """API tokens for programs using the JSON API: shown once, kept only as a digest."""


@admin_token.command("create")
@click.argument("name")
@click.option("--viewer", is_flag=True, help="A viewer's token: it reads, it changes nothing.")
@pass_cli
def token_create(ctx: CliContext, name: str, viewer: bool) -> None:
    """Create API token NAME (an administrator's unless --viewer) and print it, once: only this
    output ever shows it."""
    _ = ctx.gettext
    role = Role.VIEWER if viewer else Role.ADMIN
    info, token = ctx.run(lambda app: app.accounts.create_api_token(name, role))
    label = _(ROLE_LABELS[info.role])
    notice = _(
        "API token {name} created ({role}). It is shown only this once, on standard output:"
        " keep it now; 'tokenpost admin token revoke {name}' ends it."
    )
    click.echo(notice.format(name=name, role=label), err=True)
    click.echo(token.reveal())


@admin_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@pass_cli
def token_list(ctx: CliContext, as_json: bool) -> None:
    """List the API tokens with their roles (never the tokens)."""

    async def work(app: App) -> tuple[list[ApiTokenInfo], list[DamagedRecord]]:
        return await app.accounts.list_api_tokens(), await app.accounts.damaged()

    tokens, damaged = ctx.run(work, writes=False)
    if as_json:
        echo_json({"api_tokens": [_entry(t) for t in tokens]})
    else:
        for info in tokens:
            click.echo("\t".join(_row(ctx, info)))
    echo_damaged(ctx, damaged, "api_token:")


@admin_token.command("revoke")
@click.argument("name")
@pass_cli
def token_revoke(ctx: CliContext, name: str) -> None:
    """Revoke API token NAME: it is refused from now on."""
    _ = ctx.gettext
    ctx.run(lambda app: app.accounts.revoke_api_token(name))
    click.echo(_("API token {name} revoked.").format(name=name))


# --- helpers --------------------------------------------------------------------------------------


def _new_password(ctx: CliContext, name: str, source: str | None) -> Secret:
    """The new password: from standard input with ``--password -``, else asked twice on the
    terminal.

    Raises:
        UsageError: a value other than '-', no terminal to ask on, nothing on standard input,
            or the two entries differ.
        ValidationError: the password breaks a rule.
    """
    from tokenpost.accounts import check_password

    _ = ctx.gettext
    if source is not None:
        if source != "-":
            raise UsageError(
                "--password takes only '-' (read the password from standard input): a password"
                " on the command line would be seen in the process list"
            )
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageError("{option} -: nothing on standard input", option="--password")
        password = Secret(line)
        check_password(password)
        return password
    if not sys.stdin.isatty():
        raise UsageError(
            "no terminal to ask the password on: give --password - and write the password on"
            " standard input"
        )
    first = Secret(click.prompt(_("Password for {name}").format(name=name), hide_input=True))
    check_password(first)
    second = Secret(click.prompt(_("The same password again"), hide_input=True))
    if first != second:
        raise UsageError("the two passwords differ; nothing was changed")
    return first


def _row(ctx: CliContext, item: Account | ApiTokenInfo) -> list[str]:
    from tokenpost.cli.render import format_expiry

    return [item.name, ctx.gettext(ROLE_LABELS[item.role]), format_expiry(item.created_at)]


def _entry(item: Account | ApiTokenInfo) -> dict[str, object]:
    return {"name": item.name, "role": item.role.value, "created_at": item.created_at}
