"""`tokenpost setup`: the device's quick settings — SMTP, provider, account, then Get Token."""

from __future__ import annotations

from typing import Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.settings.model import AuthMethod, Preset, Provider, Security, SmtpSetting

_PORTS = {Security.STARTTLS: 587, Security.TLS: 465, Security.NONE: 25}


@click.command()
@pass_cli
def setup(ctx: CliContext) -> None:
    """Guided set-up of the SMTP setting with OAuth 2.0, then obtain its token."""
    from tokenpost.cli.token_cmds import token_get

    existing = ctx.run(lambda app: app.store.list_providers())
    provider = _ask_provider(existing)
    smtp = _ask_smtp(provider.name)

    async def work(app: Any) -> None:
        if provider not in existing:
            await app.settings.put_provider(provider)
        await app.settings.put_smtp(smtp)

    ctx.run(work)
    click.echo("Settings saved. Obtaining the token (Get Token)…")
    click.get_current_context().invoke(token_get, setting="smtp", as_json=False)


def _ask_provider(existing: list[Provider]) -> Provider:
    names = [p.name for p in existing]
    if names:
        choice = click.prompt(
            "Provider", type=click.Choice([*names, "new"]), default=names[0], show_choices=True
        )
        if choice != "new":
            return next(p for p in existing if p.name == choice)
    preset = Preset(
        click.prompt(
            "Provider type", type=click.Choice([p.value for p in Preset]), default="microsoft"
        )
    )
    name = click.prompt("Name for this provider", default=preset.value)
    client_id = click.prompt("Client ID of your app registration")
    tenant = issuer = None
    if preset is Preset.MICROSOFT:
        tenant = click.prompt("Tenant (ID, domain, organizations, common)", default="organizations")
    elif preset is Preset.GENERIC:
        issuer = click.prompt("Issuer URL (https://…)")
    scope: tuple[str, ...] | None = None
    ca_file: str | None = None
    if preset is Preset.GENERIC:
        scope = tuple(click.prompt("Scopes (space-separated)").split())
        ca_file = (
            click.prompt(
                "CA file for the provider's TLS (empty: the system's trust store)",
                default="",
                show_default=False,
            )
            or None
        )
    return Provider(
        name, preset, client_id, tenant=tenant, issuer=issuer, scope=scope, ca_file=ca_file
    )


def _ask_smtp(provider_name: str) -> SmtpSetting:
    server = click.prompt("Primary server", default="smtp.office365.com")
    security = Security(
        click.prompt(
            "Enable SSL/TLS", type=click.Choice([s.value for s in Security]), default="starttls"
        )
    )
    port = click.prompt("Port number", type=int, default=_PORTS[security])
    timeout = click.prompt("Timeout (seconds)", type=int, default=30)
    account = click.prompt("Account name (the mailbox the token is for)")
    sender_address = click.prompt("Sender address", default=account)
    sender_name = click.prompt("Sender name", default="tokenpost")
    return SmtpSetting(
        server=server,
        port=port,
        security=security,
        timeout=timeout,
        sender_name=sender_name,
        sender_address=sender_address,
        auth=AuthMethod.OAUTH2,
        provider=provider_name,
        account=account,
    )
