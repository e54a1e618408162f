"""`provider`, `smtp`, `pop` and `config`: the settings an administrator edits."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from tokenpost.cli.context import CliContext, pass_cli
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

_SCOPE_HELP = "Space-separated scopes, as in OAuth (overrides the preset's)."


def _scopes(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(text.split())


def _secret_option(value: str | None, what: str) -> Secret | None:
    """A secret given on the command line, or '-' to read it from standard input (keeps it out
    of the process list and shell history)."""
    if value is None:
        return None
    if value == "-":
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.BadParameter(f"no {what} on standard input")
        return Secret(line)
    return Secret(value)


def _choice(enum: type[Any]) -> click.Choice[str]:
    return click.Choice([m.value for m in enum])


def _echo_json(data: dict[str, object]) -> None:
    click.echo(json.dumps({"format_version": 1, **data}))


# -- provider --------------------------------------------------------------------------------


@click.group()
def provider() -> None:
    """Where tokens come from: microsoft, google, or any OAuth 2.0 provider."""


@provider.command("add")
@click.argument("name")
@click.option("--preset", type=_choice(Preset), required=True)
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
@click.option("--scope", help=_SCOPE_HELP)
@click.option("--smtp-scope", help="Scopes for the SMTP token only.")
@click.option("--pop-scope", help="Scopes for POP tokens only.")
@click.option("--ca-file", help="CA certificate(s) to verify this provider's TLS with.")
@pass_cli
def provider_add(ctx: CliContext, name: str, **options: Any) -> None:
    """Add or replace provider NAME. Tokens obtained through it are discarded when a change
    re-targets them (client, endpoints, scopes, tenant)."""
    value = Provider(
        name=name,
        preset=Preset(options["preset"]),
        client_id=options["client_id"],
        client_secret=_secret_option(options["client_secret"], "client secret"),
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
        ca_file=_absolute(options["ca_file"]),
    )
    ctx.run(lambda app: app.settings.put_provider(value))
    click.echo(f"provider {name} saved")


@provider.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def provider_list(ctx: CliContext, as_json: bool) -> None:
    """List providers."""
    providers = ctx.run(lambda app: app.store.list_providers())
    if as_json:
        _echo_json({"providers": [_provider_json(p) for p in providers]})
        return
    for p in sorted(providers, key=lambda p: p.name):
        flow = p.flow or "default"
        click.echo(f"{p.name}\t{p.preset}\tclient {p.client_id}\tflow {flow}")


def _provider_json(p: Provider) -> dict[str, object]:
    return {
        "name": p.name,
        "preset": p.preset.value,
        "client_id": p.client_id,
        "has_client_secret": p.client_secret is not None,
        "flow": p.flow.value if p.flow else None,
        "tenant": p.tenant,
        "issuer": p.issuer,
        "scope": list(p.scope) if p.scope else None,
    }


@provider.command("remove")
@click.argument("name")
@pass_cli
def provider_remove(ctx: CliContext, name: str) -> None:
    """Remove provider NAME (refused while a setting uses it)."""
    ctx.run(lambda app: app.settings.remove_provider(name))
    click.echo(f"provider {name} removed")


# -- smtp ------------------------------------------------------------------------------------


@click.group()
def smtp() -> None:
    """The one SMTP setting; its token serves every function that sends mail."""


@smtp.command("set")
@click.option("--server", help="Primary server (host name or address).")
@click.option("--port", type=int)
@click.option("--security", type=_choice(Security))
@click.option("--timeout", type=int, help="Seconds.")
@click.option("--sender-name")
@click.option("--sender-address")
@click.option("--auth", type=_choice(AuthMethod))
@click.option("--provider", "provider_name", help="Provider, for --auth oauth2.")
@click.option("--account", help="Account (mailbox) the token is for, for --auth oauth2.")
@click.option("--password", help="Password for --auth password ('-' reads standard input).")
@click.option("--ca-file", help="CA certificate(s) to verify the mail server with.")
@pass_cli
def smtp_set(ctx: CliContext, **options: Any) -> None:
    """Create or change the SMTP setting. Only the given options change; a new setting needs
    --server, --port, --security, --timeout, --sender-name, --sender-address and --auth."""

    async def work(app: Any) -> None:
        current = await app.store.get_smtp()
        await app.settings.put_smtp(_merge_smtp(current, options))

    ctx.run(work)
    click.echo("SMTP setting saved")


_SMTP_REQUIRED = ("server", "port", "security", "timeout", "sender_name", "sender_address", "auth")


def _merge_smtp(current: SmtpSetting | None, o: dict[str, Any]) -> SmtpSetting:
    changes = _common_changes(o)
    for key in ("timeout", "sender_name", "sender_address"):
        if o[key] is not None:
            changes[key] = o[key]
    if current is not None:
        return replace(current, **changes)
    _require(changes, _SMTP_REQUIRED)
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
        changes["password"] = _secret_option(o["password"], "password")
    if o.get("ca_file") is not None:
        changes["ca_file"] = _absolute(o["ca_file"])
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


def _require(changes: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in changes]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise click.UsageError(f"a new setting needs {flags}")


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


@smtp.command("show")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def smtp_show(ctx: CliContext, as_json: bool) -> None:
    """Show the SMTP setting (without its password)."""
    current = ctx.run(lambda app: app.store.get_smtp())
    if current is None:
        raise click.ClickException("no SMTP setting: run 'tokenpost smtp set'")
    data = _setting_json(current)
    if as_json:
        _echo_json({"smtp": data})
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


@click.group()
def pop() -> None:
    """POP settings (Internet fax receive, e-mail print…); each has its own token."""


@pop.command("add")
@click.argument("name")
@click.option("--server", help="POP3 server.")
@click.option("--port", type=int)
@click.option("--security", type=_choice(Security))
@click.option("--check-interval", type=int, help="Seconds between checks.")
@click.option("--auth", type=_choice(AuthMethod))
@click.option("--provider", "provider_name")
@click.option("--account")
@click.option("--password", help="Password for --auth password/apop ('-' reads standard input).")
@click.option("--deliver-to", help="Delivery folder (a Maildir).")
@click.option("--ca-file")
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
    if not is_valid_pop_name(name):
        raise click.BadParameter("1-63 letters, digits, '_', '.', '-'", param_hint="NAME")

    async def work(app: Any) -> None:
        current = await app.store.get_pop(name)
        await app.settings.put_pop(_merge_pop(name, current, options))

    ctx.run(work)
    click.echo(f"POP setting {name} saved")


_POP_REQUIRED = ("server", "port", "security", "check_interval", "auth", "deliver_to")


def _merge_pop(name: str, current: PopSetting | None, o: dict[str, Any]) -> PopSetting:
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
    _require(changes, _POP_REQUIRED)
    return PopSetting(name=name, **changes)


@pop.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def pop_list(ctx: CliContext, as_json: bool) -> None:
    """List POP settings."""
    settings = sorted(ctx.run(lambda app: app.store.list_pop()), key=lambda p: p.name)
    if as_json:
        _echo_json({"pop": [_setting_json(p) for p in settings]})
        return
    for p in settings:
        click.echo(f"pop:{p.name}\t{p.server}:{p.port}\t{p.security}\t{p.auth}\t{p.account or ''}")


@pop.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def pop_remove(ctx: CliContext, name: str, yes: bool) -> None:
    """Remove POP setting NAME and its token."""
    if not yes:
        click.confirm(f"Remove POP setting {name} and its token?", abort=True)
    ctx.run(lambda app: app.settings.remove_pop(name))
    click.echo(f"POP setting {name} removed")


# -- config ----------------------------------------------------------------------------------


@click.group()
def config() -> None:
    """Settings as TOML, for version control."""


@config.command("export")
@click.option("--include-secrets", is_flag=True, help="Also write client secrets and passwords.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def config_export(ctx: CliContext, include_secrets: bool, output: Path | None) -> None:
    """Write all settings as TOML (to standard output or --output). Tokens are never exported."""
    from tokenpost.settings.toml_io import export_toml

    doc = ctx.run(lambda app: app.settings.export())
    text = export_toml(doc, include_secrets=include_secrets)
    if output is None:
        click.echo(text, nl=False)
    else:
        _write_private(output, text, private=include_secrets)
        click.echo(f"settings written to {output}", err=True)


def _write_private(path: Path, text: str, *, private: bool) -> None:
    import os

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


@config.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@pass_cli
def config_import(ctx: CliContext, file: Any) -> None:
    """Replace the settings with FILE (TOML). Secrets the file omits are kept; tokens whose
    setting the import re-targets are discarded. Nothing changes if any field is invalid."""
    from tokenpost.settings.toml_io import merge_secrets, parse_toml, validate_document

    parsed = parse_toml(file.read())

    async def work(app: Any) -> None:
        # The file may omit secrets (exports do): keep the stored ones where they still go to
        # the same place, then check the whole result before anything is written.
        doc = merge_secrets(parsed, await app.settings.export())
        validate_document(doc)
        await app.settings.apply_document(doc)

    ctx.run(work)
    click.echo("settings imported")
