"""Provider presets: default flows, endpoints (preset, explicit, discovered), scopes, extras."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tokenpost.oauth.providers import (
    Endpoints,
    authorization_extra_params,
    default_flow,
    effective_flow,
    endpoints_from_metadata,
    preset_endpoints,
    scopes_for,
)
from tokenpost.oauth.rfc8414 import ServerMetadata
from tokenpost.secret import Secret
from tokenpost.settings.model import Flow, Preset, Provider, Use

MS = "https://login.microsoftonline.com"
GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SMTP_SEND = ("https://outlook.office.com/SMTP.Send", "offline_access")
POP_ALL = ("https://outlook.office.com/POP.AccessAsUser.All", "offline_access")
APP_DEFAULT = ("https://outlook.office365.com/.default",)
GMAIL = ("https://mail.google.com/",)

MICROSOFT = Provider(name="m365", preset=Preset.MICROSOFT, client_id="ms-client")
GOOGLE = Provider(
    name="gmail",
    preset=Preset.GOOGLE,
    client_id="x.apps.googleusercontent.com",
    client_secret=Secret("GOCSPX-secret"),
)
GENERIC = Provider(
    name="corp", preset=Preset.GENERIC, client_id="c", issuer="https://id.corp.example"
)


@pytest.mark.parametrize(
    ("preset", "flow"),
    [(Preset.MICROSOFT, Flow.DEVICE), (Preset.GOOGLE, Flow.BROWSER), (Preset.GENERIC, Flow.DEVICE)],
)
def test_default_flow(preset: Preset, flow: Flow) -> None:
    assert default_flow(preset) is flow


def test_every_preset_has_a_row() -> None:
    for preset in Preset:
        default_flow(preset)
        authorization_extra_params(Provider(name="p", preset=preset, client_id="c"))


@pytest.mark.parametrize(
    ("provider", "flow"),
    [
        (MICROSOFT, Flow.DEVICE),
        (replace(MICROSOFT, flow=Flow.BROWSER), Flow.BROWSER),
        (replace(MICROSOFT, flow=Flow.APP), Flow.APP),
        (GOOGLE, Flow.BROWSER),
        (GENERIC, Flow.DEVICE),
        (replace(GENERIC, flow=Flow.BROWSER), Flow.BROWSER),
    ],
)
def test_effective_flow(provider: Provider, flow: Flow) -> None:
    assert effective_flow(provider) is flow


# -- endpoints ---------------------------------------------------------------------------------


def ms_endpoints(tenant: str, issuer: str | None) -> Endpoints:
    return Endpoints(
        token=f"{MS}/{tenant}/oauth2/v2.0/token",
        authorization=f"{MS}/{tenant}/oauth2/v2.0/authorize",
        device_authorization=f"{MS}/{tenant}/oauth2/v2.0/devicecode",
        revocation=None,
        issuer=issuer,
    )


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (None, ms_endpoints("organizations", None)),
        ("common", ms_endpoints("common", None)),
        ("consumers", ms_endpoints("consumers", None)),
        ("contoso.onmicrosoft.com", ms_endpoints("contoso.onmicrosoft.com", None)),
        (GUID, ms_endpoints(GUID, f"{MS}/{GUID}/v2.0")),
        (GUID.upper(), ms_endpoints(GUID.upper(), f"{MS}/{GUID.upper()}/v2.0")),
    ],
)
def test_microsoft_endpoints_from_tenant(tenant: str | None, expected: Endpoints) -> None:
    assert preset_endpoints(replace(MICROSOFT, tenant=tenant)) == expected


def test_google_endpoints() -> None:
    assert preset_endpoints(GOOGLE) == Endpoints(
        token="https://oauth2.googleapis.com/token",
        authorization="https://accounts.google.com/o/oauth2/v2/auth",
        device_authorization="https://oauth2.googleapis.com/device/code",
        revocation="https://oauth2.googleapis.com/revoke",
        issuer="https://accounts.google.com",
    )


def test_explicit_endpoints_override_the_preset() -> None:
    provider = replace(
        MICROSOFT,
        tenant=GUID,
        token_endpoint="https://proxy.example/token",
        revocation_endpoint="https://proxy.example/revoke",
    )
    assert preset_endpoints(provider) == replace(
        ms_endpoints(GUID, f"{MS}/{GUID}/v2.0"),
        token="https://proxy.example/token",
        revocation="https://proxy.example/revoke",
    )


def test_generic_without_token_endpoint_needs_discovery() -> None:
    assert preset_endpoints(GENERIC) is None


def test_generic_with_explicit_endpoints() -> None:
    provider = replace(
        GENERIC,
        token_endpoint="https://id.corp.example/token",
        device_authorization_endpoint="https://id.corp.example/device",
    )
    assert preset_endpoints(provider) == Endpoints(
        token="https://id.corp.example/token",
        authorization=None,
        device_authorization="https://id.corp.example/device",
        revocation=None,
        issuer="https://id.corp.example",
    )


METADATA = ServerMetadata(
    issuer="https://id.corp.example",
    token_endpoint="https://id.corp.example/oauth/token",
    authorization_endpoint="https://id.corp.example/oauth/authorize",
    device_authorization_endpoint="https://id.corp.example/oauth/device",
    revocation_endpoint="https://id.corp.example/oauth/revoke",
)


def test_endpoints_from_metadata() -> None:
    assert endpoints_from_metadata(GENERIC, METADATA) == Endpoints(
        token="https://id.corp.example/oauth/token",
        authorization="https://id.corp.example/oauth/authorize",
        device_authorization="https://id.corp.example/oauth/device",
        revocation="https://id.corp.example/oauth/revoke",
        issuer="https://id.corp.example",
    )


def test_explicit_fields_win_over_metadata() -> None:
    provider = replace(GENERIC, authorization_endpoint="https://login.corp.example/authorize")
    endpoints = endpoints_from_metadata(provider, METADATA)
    assert endpoints.authorization == "https://login.corp.example/authorize"
    assert endpoints.token == METADATA.token_endpoint


def test_templated_issuer_is_not_used_for_iss_checks() -> None:
    metadata = replace(METADATA, issuer=f"{MS}/common/v2.0", issuer_is_template=True)
    assert endpoints_from_metadata(GENERIC, metadata).issuer is None


# -- scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "use", "scopes"),
    [
        (MICROSOFT, Use.SMTP, SMTP_SEND),
        (MICROSOFT, Use.POP, POP_ALL),
        (replace(MICROSOFT, flow=Flow.BROWSER), Use.POP, POP_ALL),
        (replace(MICROSOFT, flow=Flow.APP), Use.SMTP, APP_DEFAULT),
        (replace(MICROSOFT, flow=Flow.APP), Use.POP, APP_DEFAULT),
        (GOOGLE, Use.SMTP, GMAIL),
        (GOOGLE, Use.POP, GMAIL),
        (GENERIC, Use.SMTP, ()),
        (GENERIC, Use.POP, ()),
        (replace(GENERIC, scope=("mail",)), Use.SMTP, ("mail",)),
        (replace(GENERIC, scope=("mail",), pop_scope=("pop",)), Use.POP, ("pop",)),
        (replace(GENERIC, scope=("mail",), pop_scope=("pop",)), Use.SMTP, ("mail",)),
        (replace(MICROSOFT, scope=("a", "b")), Use.SMTP, ("a", "b")),
        (replace(MICROSOFT, scope=("a",), smtp_scope=("s",)), Use.SMTP, ("s",)),
        (replace(MICROSOFT, smtp_scope=("s",)), Use.POP, POP_ALL),
        (replace(MICROSOFT, flow=Flow.APP, scope=("x",)), Use.SMTP, ("x",)),
        (replace(MICROSOFT, smtp_scope=()), Use.SMTP, SMTP_SEND),  # empty counts as unset
    ],
)
def test_scopes_for(provider: Provider, use: Use, scopes: tuple[str, ...]) -> None:
    assert scopes_for(provider, use) == scopes


@pytest.mark.parametrize(
    ("provider", "params"),
    [
        (GOOGLE, (("access_type", "offline"), ("prompt", "consent"))),
        (MICROSOFT, ()),
        (GENERIC, ()),
    ],
)
def test_authorization_extra_params(
    provider: Provider, params: tuple[tuple[str, str], ...]
) -> None:
    assert authorization_extra_params(provider) == params
