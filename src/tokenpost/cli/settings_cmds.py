"""`smtp` and `pop`: the mail settings an administrator edits (`provider` and `config` have
modules of their own).

A change that re-targets a token (account, server, provider…) discards it and revokes it at the
provider it came from; each command says which tokens that touched. A setting whose stored
record is damaged can be overwritten by giving it in full, and removed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.settings_common import (
    absolute,
    ca_file_option,
    choice,
    echo_damaged,
    echo_discarded,
    echo_json,
    secret_option,
)
from tokenpost.cli.translated import group
from tokenpost.errors import DamagedRecordError, UsageError
from tokenpost.settings.model import (
    AuthMethod,
    PopSetting,
    Security,
    SmtpSetting,
    is_valid_pop_name,
)

if TYPE_CHECKING:
    from tokenpost.ports import DamagedRecord, Store
    from tokenpost.services.settings import DiscardedToken
    from tokenpost.wiring import App


# -- smtp ------------------------------------------------------------------------------------


@group()
def smtp() -> None:
    """The one SMTP setting; its token serves every function that sends mail."""


@smtp.command("set")
@click.option("--server", help="Primary server (host name or address).")
@click.option("--port", type=int, help="Port number (587 for starttls, 465 for tls).")
@click.option("--security", type=choice(Security), help="starttls, tls or none.")
@click.option("--timeout", type=int, help="Seconds.")
@click.option("--sender-name", help="The sender's display name.")
@click.option("--sender-address", help="The sender's e-mail address.")
@click.option("--auth", type=choice(AuthMethod), help="none, password or oauth2.")
@click.option("--provider", "provider_name", help="Provider, for --auth oauth2.")
@click.option("--account", help="Account (mailbox) the token is for, for --auth oauth2.")
@click.option("--password", help="Password for --auth password ('-' reads standard input).")
@click.option(
    "--ca-file",
    help="CA certificate(s) (PEM) to verify the mail server with, instead of TOKENPOST_CA_FILE "
    "or the system trust store; '' for none.",
)
@pass_cli
def smtp_set(ctx: CliContext, **options: Any) -> None:
    """Create or change the SMTP setting. Only the given options change; a new setting needs
    --server, --port, --security, --timeout, --sender-name, --sender-address and --auth."""
    _ = ctx.gettext

    async def work(app: App) -> tuple[DiscardedToken, ...]:
        try:
            current, damaged = await app.store.get_smtp(), False
        except DamagedRecordError:
            current, damaged = None, True
        return await app.settings.put_smtp(_merge_smtp(current, options, damaged=damaged))

    discarded = ctx.run(work)
    click.echo(_("SMTP setting saved."))
    echo_discarded(ctx, discarded)


_SMTP_REQUIRED = ("server", "port", "security", "timeout", "sender_name", "sender_address", "auth")


def _merge_smtp(current: SmtpSetting | None, o: dict[str, Any], *, damaged: bool) -> SmtpSetting:
    changes = _common_changes(o)
    for key in ("timeout", "sender_name", "sender_address"):
        if o[key] is not None:
            changes[key] = o[key]
    if current is not None:
        return replace(current, **changes)
    _require(changes, _SMTP_REQUIRED, damaged="smtp" if damaged else None)
    return SmtpSetting(**changes)


def _common_changes(o: dict[str, Any]) -> dict[str, Any]:
    """Options shared by SMTP and POP settings, converted; absent options are left out."""
    changes: dict[str, Any] = {}
    for key in ("server", "port", "account"):
        if o.get(key) is not None:
            changes[key] = o[key]
    if o.get("security"):
        changes["security"] = Security(o["security"])
    if o.get("auth"):
        changes["auth"] = AuthMethod(o["auth"])
    if o.get("provider_name") is not None:
        changes["provider"] = o["provider_name"]
    if o.get("password") is not None:
        changes["password"] = secret_option(o["password"], "--password")
    if o.get("ca_file") is not None:
        changes["ca_file"] = ca_file_option(o["ca_file"])
    # Switching the method drops what only the old method used, unless given anew.
    auth = changes.get("auth")
    if auth is AuthMethod.NONE:
        for key in ("provider", "account", "password"):
            changes.setdefault(key, None)
    elif auth in (AuthMethod.PASSWORD, AuthMethod.APOP):
        changes.setdefault("provider", None)
    elif auth is AuthMethod.OAUTH2:
        changes.setdefault("password", None)
    return changes


def _require(changes: dict[str, Any], names: tuple[str, ...], *, damaged: str | None) -> None:
    """Refuse a new setting (or one replacing a damaged record) that misses mandatory options."""
    missing = [n for n in names if n not in changes]
    if not missing:
        return
    flags = ", ".join("--" + n.replace("_", "-") for n in missing)
    if damaged is not None:
        raise UsageError(
            "the stored setting {setting} is damaged and cannot be read: give it in full "
            "(also {flags})",
            setting=damaged,
            flags=flags,
        )
    raise UsageError("a new setting needs {flags}", flags=flags)


@smtp.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
@pass_cli
def smtp_show(ctx: CliContext, as_json: bool) -> None:
    """Show the SMTP setting (without its password)."""
    from tokenpost.errors import NotFoundError

    current = ctx.read(lambda store: store.get_smtp())
    if current is None:
        raise NotFoundError("no SMTP setting: run 'tokenpost smtp set'")
    data = _setting_json(current)
    if as_json:
        echo_json({"smtp": data})
        return
    for key, value in data.items():
        click.echo(f"{key}: {'' if value is None else value}")


def _setting_json(s: SmtpSetting | PopSetting) -> dict[str, object]:
    data: dict[str, object] = {}
    for name in s.__slots__:
        value = getattr(s, name)
        if name == "password":
            data["has_password"] = value is not None
        else:
            data[name] = getattr(value, "value", value)
    return data


# -- pop -------------------------------------------------------------------------------------


@group()
def pop() -> None:
    """POP settings (Internet fax receive, e-mail print…); each has its own token."""


@pop.command("add")
@click.argument("name")
@click.option("--server", help="POP3 server.")
@click.option("--port", type=int, help="Port number (995 for tls, 110 for starttls).")
@click.option("--security", type=choice(Security), help="tls, starttls or none.")
@click.option("--check-interval", type=int, help="Seconds between checks.")
@click.option("--auth", type=choice(AuthMethod), help="none, password, apop or oauth2.")
@click.option("--provider", "provider_name", help="Provider, for --auth oauth2.")
@click.option("--account", help="Account (mailbox) to receive from.")
@click.option("--password", help="Password for --auth password/apop ('-' reads standard input).")
@click.option(
    "--deliver-to",
    help="Delivery folder (a Maildir; an absolute path, created on the first receive).",
)
@click.option(
    "--ca-file",
    help="CA certificate(s) (PEM) to verify the mail server with, instead of TOKENPOST_CA_FILE "
    "or the system trust store; '' for none.",
)
@click.option(
    "--leave-on-server/--delete-after-download",
    default=None,
    help="Keep messages on the server (each is fetched once), or delete each once it is stored"
    " (the default for a new setting).",
)
@click.option(
    "--command",
    help="Run for each stored message, split like a shell line (no shell), with the message"
    " file's path appended; '' removes it. Runs at least once per message: one cut short by a"
    " crash runs again at the next check.",
)
@pass_cli
def pop_add(ctx: CliContext, name: str, **options: Any) -> None:
    """Create POP setting NAME, or change the given options of an existing one."""
    _ = ctx.gettext
    if not is_valid_pop_name(name):
        raise click.BadParameter(_("1-63 letters, digits, '_', '.', '-'"), param_hint="NAME")

    async def work(app: App) -> tuple[DiscardedToken, ...]:
        try:
            current, damaged = await app.store.get_pop(name), False
        except DamagedRecordError:
            current, damaged = None, True
        return await app.settings.put_pop(_merge_pop(name, current, options, damaged=damaged))

    discarded = ctx.run(work)
    click.echo(_("POP setting {name} saved.").format(name=name))
    echo_discarded(ctx, discarded)


_POP_REQUIRED = ("server", "port", "security", "check_interval", "auth", "deliver_to")


def _merge_pop(
    name: str, current: PopSetting | None, o: dict[str, Any], *, damaged: bool
) -> PopSetting:
    changes = _common_changes(o)
    if o["check_interval"] is not None:
        changes["check_interval"] = o["check_interval"]
    if o["deliver_to"] is not None:
        changes["deliver_to"] = absolute(o["deliver_to"])
    if o["leave_on_server"] is not None:
        changes["leave_on_server"] = o["leave_on_server"]
    if o["command"] is not None:
        changes["command"] = o["command"] or None
    if current is not None:
        return replace(current, **changes)
    _require(changes, _POP_REQUIRED, damaged=f"pop:{name}" if damaged else None)
    return PopSetting(name=name, **changes)


@pop.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@pass_cli
def pop_list(ctx: CliContext, as_json: bool) -> None:
    """List POP settings."""

    async def work(store: Store) -> tuple[list[PopSetting], list[DamagedRecord]]:
        return await store.list_pop(), await store.damaged_records()

    settings, damaged = ctx.read(work)
    settings = sorted(settings, key=lambda p: p.name)
    if as_json:
        echo_json({"pop": [_setting_json(p) for p in settings]})
    else:
        for p in settings:
            row = (f"pop:{p.name}", f"{p.server}:{p.port}", p.security, p.auth, p.account or "")
            click.echo("\t".join(row))
    echo_damaged(ctx, damaged, "pop:")


@pop.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Remove without asking for confirmation.")
@pass_cli
def pop_remove(ctx: CliContext, name: str, yes: bool) -> None:
    """Remove POP setting NAME and its token (revoked at the provider where it can be)."""
    from tokenpost.cli.prompts import confirm

    _ = ctx.gettext
    if not yes:
        confirm(_("Remove POP setting {name} and its token?").format(name=name), abort=True)
    discarded = ctx.run(lambda app: app.settings.remove_pop(name))
    click.echo(_("POP setting {name} removed.").format(name=name))
    echo_discarded(ctx, discarded)
