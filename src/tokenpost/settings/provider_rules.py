"""The rules a provider breaks, all at once (see `settings.validate` for the mail settings).

Problems are `FieldProblem(field, rule)`, the field named as its CLI option without dashes. Rules
come from: RFC 6749 §3.1/§3.2 (endpoints carry no fragment) and §3.3 (scope-token), RFC 8414 §2
(issuer: https, no query, no fragment), RFC 8252 §7.3/§8.3 (loopback redirect URIs), and the
provider facts in reference/protocols.md (Google's device flow and Gmail, §2.3; Microsoft's
AADSTS9001023 for app-only on shared tenants, §1.1; Microsoft accepts no ``[::1]`` redirect, §1.7).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from tokenpost.errors import FieldProblem
from tokenpost.settings.model import Flow, Preset, Provider, Use
from tokenpost.settings.rule_tools import (
    NAME,
    NAME_RULE,
    one_per_field,
    path_problems,
    raise_if,
)
from tokenpost.settings.syntax import (
    SPACE_OR_CONTROL,
    is_hostname,
    is_https_url,
    loopback_redirect_rule,
    proxy_rule,
)
from tokenpost.text import N_, Text

_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")  # RFC 6749 §3.3
_GUID: Final = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")

_SHARED_TENANTS: Final = frozenset({"common", "organizations", "consumers"})
_GOOGLE_MAIL_SCOPE: Final = ("https://mail.google.com/",)
_GMAIL_SCOPE_PREFIXES: Final = (
    "https://mail.google.com/",
    "https://www.googleapis.com/auth/gmail.",
)
# Keep in step with oauth.providers.default_flow (not imported: settings rules must not depend on
# the OAuth client code). Google's device grant cannot carry Gmail scopes (protocols.md §2.3).
_DEFAULT_FLOW: Final = {
    Preset.MICROSOFT: Flow.DEVICE,
    Preset.GOOGLE: Flow.BROWSER,
    Preset.GENERIC: Flow.DEVICE,
}

GENERIC_SCOPE_RULE: Final = N_("a generic provider needs --scope (or --smtp-scope/--pop-scope)")


def provider_problems(p: Provider, *, require_secrets: bool = True) -> tuple[FieldProblem, ...]:
    """Every rule `p` breaks, in field order."""
    return one_per_field(
        [
            *_name_problems(p.name),
            *_client_id_problems(p.client_id),
            *_tenant_problems(p),
            *_issuer_problems(p),
            *_endpoint_problems(p),
            *_scope_problems(p),
            *_flow_problems(p, require_secrets=require_secrets),
            *path_problems("ca_file", p.ca_file),
            *_redirect_problems(p),
            *_proxy_problems(p),
        ]
    )


def validate_provider(p: Provider, *, require_secrets: bool = True) -> None:
    """Raise `ValidationError` listing every rule `p` breaks."""
    problems = provider_problems(p, require_secrets=require_secrets)
    raise_if(problems, subject=provider_subject(p.name))


def provider_subject(name: str) -> Text:
    """What a provider's `ValidationError` is about."""
    return Text("provider {name}", name=name)


def _name_problems(name: str) -> Iterator[FieldProblem]:
    if not NAME.fullmatch(name):
        yield FieldProblem("name", NAME_RULE)


def _client_id_problems(client_id: str) -> Iterator[FieldProblem]:
    if not client_id or SPACE_OR_CONTROL.search(client_id):
        yield FieldProblem("client_id", N_("required; no spaces or control characters"))


def _tenant_problems(p: Provider) -> Iterator[FieldProblem]:
    if p.tenant is None:
        return
    if p.preset is not Preset.MICROSOFT:
        yield FieldProblem("tenant", N_("only a microsoft provider has a tenant"))
    elif not _is_tenant(p.tenant):
        yield FieldProblem(
            "tenant",
            N_("must be common, organizations, consumers, a tenant ID (GUID) or a domain name"),
        )


def _is_tenant(tenant: str) -> bool:
    return (
        tenant.lower() in _SHARED_TENANTS
        or bool(_GUID.fullmatch(tenant))
        or ("." in tenant and is_hostname(tenant))
    )


def _issuer_problems(p: Provider) -> Iterator[FieldProblem]:
    if p.issuer is not None:
        if p.preset is not Preset.GENERIC:
            yield FieldProblem("issuer", N_("only a generic provider uses --issuer (discovery)"))
        elif not is_https_url(p.issuer, allow_query=False):
            yield FieldProblem(
                "issuer",
                N_("must be an https URL with a host and no query or fragment (RFC 8414 §2)"),
            )
    if p.preset is Preset.GENERIC and p.issuer is None and p.token_endpoint is None:
        yield FieldProblem("issuer", N_("a generic provider needs --issuer or --token-endpoint"))


def _endpoint_problems(p: Provider) -> Iterator[FieldProblem]:
    # Tokens, codes and client secrets cross these: https only, even on loopback.
    endpoints = {
        "authorization_endpoint": p.authorization_endpoint,
        "token_endpoint": p.token_endpoint,
        "device_authorization_endpoint": p.device_authorization_endpoint,
        "revocation_endpoint": p.revocation_endpoint,
    }
    for field, url in endpoints.items():
        if url is not None and not is_https_url(url, allow_query=True):
            yield FieldProblem(
                field, N_("must be an https URL with a host, no user:password@ and no #fragment")
            )


def _scope_problems(p: Provider) -> Iterator[FieldProblem]:
    for field, scope in (
        ("scope", p.scope),
        ("smtp_scope", p.smtp_scope),
        ("pop_scope", p.pop_scope),
    ):
        if scope is None:
            continue
        if not scope:
            yield FieldProblem(field, N_("must name at least one scope"))
        elif not all(_SCOPE_TOKEN.fullmatch(token) for token in scope):
            yield FieldProblem(
                field,
                N_("each scope must be visible ASCII without spaces, '\"' or '\\' (RFC 6749 §3.3)"),
            )
    if p.preset is Preset.GENERIC and any(_explicit_scope(p, use) is None for use in Use):
        yield FieldProblem("scope", GENERIC_SCOPE_RULE)


def _explicit_scope(p: Provider, use: Use) -> tuple[str, ...] | None:
    specific = p.smtp_scope if use is Use.SMTP else p.pop_scope
    return specific if specific is not None else p.scope


def _flow_problems(p: Provider, *, require_secrets: bool) -> Iterator[FieldProblem]:
    flow = p.flow if p.flow is not None else _DEFAULT_FLOW[p.preset]
    if flow is Flow.APP:
        if require_secrets and p.client_secret is None:
            yield FieldProblem("client_secret", N_("the app flow needs --client-secret"))
        # Client credentials need a tenant-specific authority (protocols.md §1.10, AADSTS9001023).
        if p.preset is Preset.MICROSOFT and (
            p.tenant is None or p.tenant.lower() in _SHARED_TENANTS
        ):
            yield FieldProblem(
                "tenant",
                N_(
                    "the app flow needs your tenant ID or domain, not common, organizations or "
                    "consumers"
                ),
            )
        if p.preset is Preset.GOOGLE:
            yield FieldProblem(
                "flow", N_("Google has no app-only grant for mail; use --flow browser")
            )
    if flow is Flow.DEVICE and p.preset is Preset.GOOGLE and _asks_for_gmail(p):
        yield FieldProblem(
            "flow", N_("Google's device flow refuses the Gmail scope; use --flow browser")
        )
    if p.preset is Preset.GENERIC and p.issuer is None:
        yield from _generic_endpoint_problems(flow, p)
    if p.client_secret is not None and not p.client_secret:
        yield FieldProblem("client_secret", N_("must not be empty"))


def _asks_for_gmail(p: Provider) -> bool:
    for use in Use:
        scope = _explicit_scope(p, use)
        for token in _GOOGLE_MAIL_SCOPE if scope is None else scope:
            if token.startswith(_GMAIL_SCOPE_PREFIXES):
                return True
    return False


def _generic_endpoint_problems(flow: Flow, p: Provider) -> Iterator[FieldProblem]:
    # Without discovery, the endpoint the flow starts at must be given explicitly.
    if flow is Flow.DEVICE and p.device_authorization_endpoint is None:
        yield FieldProblem(
            "device_authorization_endpoint",
            N_("the device flow needs it when there is no --issuer"),
        )
    if flow is Flow.BROWSER and p.authorization_endpoint is None:
        yield FieldProblem(
            "authorization_endpoint", N_("the browser flow needs it when there is no --issuer")
        )


def _redirect_problems(p: Provider) -> Iterator[FieldProblem]:
    if p.redirect_uri is None:
        return
    rule = loopback_redirect_rule(p.redirect_uri)
    if rule is not None:
        yield FieldProblem("redirect_uri", rule)
    elif p.preset is Preset.MICROSOFT and "[::1]" in p.redirect_uri:
        yield FieldProblem(
            "redirect_uri",
            N_("Microsoft does not accept [::1]; register and use http://localhost"),
        )


def _proxy_problems(p: Provider) -> Iterator[FieldProblem]:
    if p.proxy is not None:
        rule = proxy_rule(p.proxy)
        if rule is not None:
            yield FieldProblem("proxy", rule)
