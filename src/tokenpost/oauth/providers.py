"""Provider presets as data: endpoints, default flow, scopes and extra authorization parameters.

One row per `Preset` in `_PRESETS`; the functions below only read the table, so adding a preset
is adding a row. Facts: Microsoft identity platform v2 endpoints and Exchange scopes
(protocols.md §1.1, §1.6), Google's discovery document and Gmail scope (§2.1, §2.2, §2.4).
Explicit endpoint fields on a `Provider` always win over the preset or discovered values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from tokenpost.settings.model import Flow, Preset, Provider, Use

if TYPE_CHECKING:
    from tokenpost.oauth.rfc8414 import ServerMetadata

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a provider's flows go. `issuer` is what an authorization response's `iss` must
    equal (RFC 9207), or None when it is not known exactly."""

    token: str
    authorization: str | None
    device_authorization: str | None
    revocation: str | None
    issuer: str | None


@dataclass(frozen=True, slots=True)
class _PresetSpec:
    """A preset's row. URL templates may contain `{tenant}`; None means "not offered"."""

    default_flow: Flow
    smtp_scope: tuple[str, ...]
    pop_scope: tuple[str, ...]
    app_scope: tuple[str, ...] | None = None  # None: the per-use scopes also serve --flow app
    token: str | None = None  # None: no fixed endpoints (generic: explicit or discovered)
    authorization: str | None = None
    device_authorization: str | None = None
    revocation: str | None = None
    issuer: str | None = None
    issuer_needs_guid_tenant: bool = False  # Entra's `iss` names the tenant by its GUID
    default_tenant: str = ""
    authorization_extra: tuple[tuple[str, str], ...] = ()
    # What the provider's portal registers for a native app's loopback redirect (RFC 8252 §7.3).
    redirect_uri: str = "http://127.0.0.1"


_MS: Final = "https://login.microsoftonline.com/{tenant}"
_PRESETS: Final[Mapping[Preset, _PresetSpec]] = MappingProxyType(
    {
        Preset.MICROSOFT: _PresetSpec(
            default_flow=Flow.DEVICE,
            smtp_scope=("https://outlook.office.com/SMTP.Send", "offline_access"),
            pop_scope=("https://outlook.office.com/POP.AccessAsUser.All", "offline_access"),
            app_scope=("https://outlook.office365.com/.default",),
            token=f"{_MS}/oauth2/v2.0/token",
            authorization=f"{_MS}/oauth2/v2.0/authorize",
            device_authorization=f"{_MS}/oauth2/v2.0/devicecode",
            revocation=None,  # Entra has no RFC 7009 endpoint
            issuer=f"{_MS}/v2.0",
            issuer_needs_guid_tenant=True,
            default_tenant="organizations",
            # The portal's "Mobile and desktop applications" platform takes http://localhost
            # and ignores the port when matching; an http://127.0.0.1 redirect can only be added
            # through the manifest (protocols.md §1.7).
            redirect_uri="http://localhost",
        ),
        Preset.GOOGLE: _PresetSpec(
            # Google's device flow refuses the Gmail scope (protocols.md §2.3).
            default_flow=Flow.BROWSER,
            smtp_scope=("https://mail.google.com/",),
            pop_scope=("https://mail.google.com/",),
            token="https://oauth2.googleapis.com/token",  # noqa: S106 - an endpoint URL
            authorization="https://accounts.google.com/o/oauth2/v2/auth",
            device_authorization="https://oauth2.googleapis.com/device/code",
            revocation="https://oauth2.googleapis.com/revoke",
            issuer="https://accounts.google.com",
            # A refresh token on every consent, not only the first (protocols.md §2.4).
            authorization_extra=(("access_type", "offline"), ("prompt", "consent")),
        ),
        Preset.GENERIC: _PresetSpec(default_flow=Flow.DEVICE, smtp_scope=(), pop_scope=()),
    }
)


def default_flow(preset: Preset) -> Flow:
    """The flow a preset uses when the provider names none."""
    return _PRESETS[preset].default_flow


def effective_flow(provider: Provider) -> Flow:
    return provider.flow or default_flow(provider.preset)


def default_redirect_uri(preset: Preset) -> str:
    """The loopback redirect URI a preset's portal registers: Microsoft ``http://localhost``,
    Google desktop apps and generic providers ``http://127.0.0.1`` (any port, RFC 8252 §7.3)."""
    return _PRESETS[preset].redirect_uri


def redirect_uri_for(provider: Provider) -> str:
    """The redirect URI the browser flow uses: the provider's own, else its preset's."""
    return provider.redirect_uri or default_redirect_uri(provider.preset)


def _with_explicit(provider: Provider, base: Endpoints) -> Endpoints:
    """`base` with every endpoint the provider sets explicitly put in its place."""
    return Endpoints(
        token=provider.token_endpoint or base.token,
        authorization=provider.authorization_endpoint or base.authorization,
        device_authorization=provider.device_authorization_endpoint or base.device_authorization,
        revocation=provider.revocation_endpoint or base.revocation,
        issuer=base.issuer,
    )


def preset_endpoints(provider: Provider) -> Endpoints | None:
    """The provider's endpoints without discovery, or None when discovery is needed (a generic
    provider without an explicit token endpoint: discover from `provider.issuer`)."""
    spec = _PRESETS[provider.preset]
    if spec.token is None:
        if not provider.token_endpoint:
            return None
        return _with_explicit(
            provider,
            Endpoints(provider.token_endpoint, None, None, None, issuer=provider.issuer),
        )
    tenant = provider.tenant or spec.default_tenant

    def fill(template: str | None) -> str | None:
        return None if template is None else template.format(tenant=quote(tenant, safe=""))

    knows_issuer = not spec.issuer_needs_guid_tenant or _GUID.fullmatch(tenant) is not None
    base = Endpoints(
        token=spec.token.format(tenant=quote(tenant, safe="")),
        authorization=fill(spec.authorization),
        device_authorization=fill(spec.device_authorization),
        revocation=fill(spec.revocation),
        issuer=fill(spec.issuer) if knows_issuer else None,
    )
    return _with_explicit(provider, base)


def endpoints_from_metadata(provider: Provider, metadata: ServerMetadata) -> Endpoints:
    """Endpoints from a discovered document (RFC 8414); explicit provider fields still win."""
    base = Endpoints(
        token=metadata.token_endpoint,
        authorization=metadata.authorization_endpoint,
        device_authorization=metadata.device_authorization_endpoint,
        revocation=metadata.revocation_endpoint,
        # A `{tenantid}` template names no single issuer the redirect's `iss` could equal.
        issuer=None if metadata.issuer_is_template else metadata.issuer,
    )
    return _with_explicit(provider, base)


def scopes_for(provider: Provider, use: Use) -> tuple[str, ...]:
    """The scopes to request: per-use setting > `scope` > the preset's default for the flow.

    An empty tuple in a setting counts as unset. Generic providers have no default: () means
    validation must demand a scope.
    """
    specific = provider.smtp_scope if use is Use.SMTP else provider.pop_scope
    if specific:
        return specific
    if provider.scope:
        return provider.scope
    spec = _PRESETS[provider.preset]
    if effective_flow(provider) is Flow.APP and spec.app_scope is not None:
        return spec.app_scope
    return spec.smtp_scope if use is Use.SMTP else spec.pop_scope


def authorization_extra_params(provider: Provider) -> tuple[tuple[str, str], ...]:
    """Extra authorization request parameters the preset needs (e.g. Google's offline access)."""
    return _PRESETS[provider.preset].authorization_extra
