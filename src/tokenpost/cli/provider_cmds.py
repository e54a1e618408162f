"""`provider add | list | remove`: where tokens come from.

A change that re-targets tokens obtained through a provider (client, endpoints, scopes, tenant)
discards them and revokes them at the provider as it was; the command says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.settings_common import (
    ca_file_option,
    choice,
    echo_damaged,
    echo_discarded,
    echo_json,
    secret_option,
)
from tokenpost.cli.translated import group
from tokenpost.settings.model import Flow, Preset, Provider

if TYPE_CHECKING:
    from tokenpost.ports import DamagedRecord, Store


def _scopes(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(text.split())


@group()
def provider() -> None:
    """Where tokens come from: microsoft, google, or any OAuth 2.0 provider."""


@provider.command("add")
@click.argument("name")
@click.option("--preset", type=choice(Preset), required=True, help="microsoft, google or generic.")
@click.option("--client-id", required=True, help="The app registration's client ID.")
@click.option("--client-secret", help="Client secret ('-' reads it from standard input).")
@click.option("--flow", type=choice(Flow), help="device, browser or app (default: the preset's).")
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
    "--ca-file",
    help="CA certificate(s) (PEM) to verify this provider's TLS with, instead of "
    "TOKENPOST_CA_FILE or the system trust store; '' for none.",
)
@click.option(
    "--redirect-uri",
    help="The browser flow's redirect URI as registered with the provider (default: "
    "microsoft http://localhost, google and generic http://127.0.0.1; without a port, a free "
    "one is chosen); '' for the default.",
)
@click.option(
    "--proxy",
    help="HTTP proxy for this provider, http://HOST:PORT (default: HTTPS_PROXY and NO_PROXY "
    "of the environment); '' for the default.",
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
        client_secret=secret_option(options["client_secret"], "--client-secret"),
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
        ca_file=ca_file_option(options["ca_file"]),
        redirect_uri=options["redirect_uri"] or None,
        proxy=options["proxy"] or None,
    )
    discarded = ctx.run(lambda app: app.settings.put_provider(value))
    click.echo(_("Provider {name} saved.").format(name=name))
    echo_discarded(ctx, discarded)


@provider.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@pass_cli
def provider_list(ctx: CliContext, as_json: bool) -> None:
    """List providers, with the flow each uses."""

    async def work(store: Store) -> tuple[list[Provider], list[DamagedRecord]]:
        return await store.list_providers(), await store.damaged_records()

    providers, damaged = ctx.read(work)
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
    from tokenpost.oauth.providers import default_flow, effective_flow, redirect_uri_for

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
        "redirect_uri": redirect_uri_for(p),  # the one the browser flow uses
        "proxy": p.proxy,  # null: the environment's HTTPS_PROXY / NO_PROXY
    }


@provider.command("remove")
@click.argument("name")
@pass_cli
def provider_remove(ctx: CliContext, name: str) -> None:
    """Remove provider NAME (refused while a setting uses it)."""
    _ = ctx.gettext
    ctx.run(lambda app: app.settings.remove_provider(name))
    click.echo(_("Provider {name} removed.").format(name=name))
