"""`provider`, `smtp` and `pop`: the settings an administrator edits (`config` is in config_cmds).

A change that re-targets a token (client, endpoints, scopes, account, server…) discards it and
revokes it at the provider it came from; each command says which tokens that touched. A setting
whose stored record is damaged can be overwritten by giving it in full, and removed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import group
from tokenpost.errors import DamagedRecordError, UsageError
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
    is_valid_pop_name,
)

if TYPE_CHECKING:
    from tokenpost.ports import DamagedRecord
    from tokenpost.services.settings import DiscardedToken
    from tokenpost.wiring import App


def _scopes(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(text.split())


def _secret_option(value: str | None, option: str) -> Secret | None:
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


def _choice(enum: type[Any]) -> click.Choice[str]:
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


def _absolute(path: str | None) -> str | None:
    """A path option made absolute; '' stays '' (the rules refuse it where a path is needed,
    and for a CA file it means "none")."""
    if not path:
        return path
    return str(Path(path).expanduser().resolve())


def _ca_file(value: str | None) -> str | None:
    """--ca-file: '' clears the setting (None), anything else is made absolute."""
    return _absolute(value) or None


# -- provider --------------------------------------------------------------------------------


@group()
def provider() -> None:
    """Where tokens come from: microsoft, google, or any OAuth 2.0 provider."""


@provider.command("add")
@click.argument("name")
@click.option("--preset", type=_choice(Preset), required=True, help="microsoft, google or generic.")
@click.option("--client-id", required=True, help="The app registration's client ID.")
@click.option("--client-secret", help="Client secret ('-' reads it from standard input).")
@click.option("--flow", type=_choice(Flow), help="device, browser or app (default: the preset's).")
@click.option(
    "--tenant", help="microsoft: common, organizations, consumers, a tenant ID or domain."
)
@click.option("--issuer", help="generic: the issuer URL, for discovery (RFC 8414).")
@click.option("--authorization-endpoint", help="Override the authorization endpoint.")
@click.option("--token-endpoint", help="Override the token endpoint.")
@click.option("--device-endpoint", help="Override the device authorization endpoint.")
@click.option("--revocation-endpoint", help="Override the revocation endpoint.")
@click.option("--scope", help="Space-separated scopes, as in OAuth (overrides the preset's).")
@click.option("--smtp-scope", help="Scopes for the SMTP token only.")
@click.option("--pop-scope", help="Scopes for POP tokens only.")
@click.option(
    "--ca-file", help="CA certificate(s) (PEM) to verify this provider's TLS with; '' for none."
)
@pass_cli
def provider_add(ctx: CliContext, name: str, **options: Any) -> None:
    """Add or replace provider NAME. Tokens obtained through it are discarded and revoked when a
    change re-targets them (client, endpoints, scopes, tenant)."""
    _ = ctx.gettext
    value = Provider(
        name=name,
        preset=Preset(options["preset"]),
        client_id=options["client_id"],
        client_secret=_secret_option(options["client_secret"], "--client-secret"),
        flow=Flow(options["flow"]) if options["flow"] else None,
        tenant=options["tenant"],
        issuer=options["issuer"],
        authorization_endpoint=options["authorization_endpoint"],
        token_endpoint=options["token_endpoint"],
        device_authorization_endpoint=options["device_endpoint"],
        revocation_endpoint=options["revocation_endpoint"],
        scope=_scopes(options["scope"]),
        smtp_scope=_scopes(options["smtp_scope"]),
        pop_scope=_scopes(options["pop_scope"]),
        ca_file=_ca_file(options["ca_file"]),
    )
    discarded = ctx.run(lambda app: app.settings.put_provider(value))
    click.echo(_("Provider {name} saved.").format(name=name))
    echo_discarded(ctx, discarded)


@provider.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@pass_cli
def provider_list(ctx: CliContext, as_json: bool) -> None:
    """List providers, with the flow each uses."""

    async def work(app: App) -> tuple[list[Provider], list[DamagedRecord]]:
        return await app.store.list_providers(), await app.settings.damaged()

    providers, damaged = ctx.run(work)
    providers = sorted(providers, key=lambda p: p.name)
    if as_json:
        echo_json({"providers": [_provider_json(p) for p in providers]})
    else:
        for p in providers:
            click.echo("\t".join(_provider_row(ctx, p)))
    echo_damaged(ctx, damaged, "provider:")


def _provider_row(ctx: CliContext, p: Provider) -> list[str]:
    from tokenpost.oauth.providers import default_flow, effective_flow

    _ = ctx.gettext
    flow = effective_flow(p)
    if flow is default_flow(p.preset):
        flow_text = _("flow {flow} (the preset's default)").format(flow=flow)
    else:
        flow_text = _("flow {flow}").format(flow=flow)
    client = _("client {client_id}").format(client_id=p.client_id)
    return [p.name, p.preset.value, client, flow_text]


def _provider_json(p: Provider) -> dict[str, object]:
    from tokenpost.oauth.providers import default_flow, effective_flow

    flow = effective_flow(p)
    return {
        "name": p.name,
        "preset": p.preset.value,
        "client_id": p.client_id,
        "has_client_secret": p.client_secret is not None,
        "flow": p.flow.value if p.flow else None,  # as set; null: the preset's default
        "effective_flow": flow.value,
        "flow_is_preset_default": flow is default_flow(p.preset),
        "tenant": p.tenant,
        "issuer": p.issuer,
        "scope": list(p.scope) if p.scope else None,
    }


@provider.command("remove")
@click.argument("name")
@pass_cli
def provider_remove(ctx: CliContext, name: str) -> None:
    """Remove provider NAME (refused while a setting uses it)."""
    _ = ctx.gettext
    ctx.run(lambda app: app.settings.remove_provider(name))
    click.echo(_("Provider {name} removed.").format(name=name))


# -- smtp ------------------------------------------------------------------------------------


@group()
def smtp() -> None:
    """The one SMTP setting; its token serves every function that sends mail."""


@smtp.command("set")
@click.option("--server", help="Primary server (host name or address).")
@click.option("--port", type=int, help="Port number (587 for starttls, 465 for tls).")
@click.option("--security", type=_choice(Security), help="starttls, tls or none.")
@click.option("--timeout", type=int, help="Seconds.")
@click.option("--sender-name", help="The sender's display name.")
@click.option("--sender-address", help="The sender's e-mail address.")
@click.option("--auth", type=_choice(AuthMethod), help="none, password or oauth2.")
@click.option("--provider", "provider_name", help="Provider, for --auth oauth2.")
@click.option("--account", help="Account (mailbox) the token is for, for --auth oauth2.")
@click.option("--password", help="Password for --auth password ('-' reads standard input).")
@click.option(
    "--ca-file", help="CA certificate(s) (PEM) to verify the mail server with; '' for none."
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
        changes["password"] = _secret_option(o["password"], "--password")
    if o.get("ca_file") is not None:
        changes["ca_file"] = _ca_file(o["ca_file"])
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

    current = ctx.run(lambda app: app.store.get_smtp())
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
@click.option("--security", type=_choice(Security), help="tls, starttls or none.")
@click.option("--check-interval", type=int, help="Seconds between checks.")
@click.option("--auth", type=_choice(AuthMethod), help="none, password, apop or oauth2.")
@click.option("--provider", "provider_name", help="Provider, for --auth oauth2.")
@click.option("--account", help="Account (mailbox) to receive from.")
@click.option("--password", help="Password for --auth password/apop ('-' reads standard input).")
@click.option(
    "--deliver-to",
    help="Delivery folder (a Maildir; an absolute path, created on the first receive).",
)
@click.option(
    "--ca-file", help="CA certificate(s) (PEM) to verify the mail server with; '' for none."
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
    " file's path appended; '' removes it.",
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
        changes["deliver_to"] = _absolute(o["deliver_to"])
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

    async def work(app: App) -> tuple[list[PopSetting], list[DamagedRecord]]:
        return await app.store.list_pop(), await app.settings.damaged()

    settings, damaged = ctx.run(work)
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
