"""Settings validation: every rule a provider, a mail setting or the alert settings break, at once.

Problems are `FieldProblem(field, rule)`; the field is the CLI option without dashes ("port",
"sender_address", "client_id") so the administrator knows what to change. `*_problems` return the
problems; `validate_*` raise one `ValidationError` holding all of them. No rule text contains a
field's value when the field can hold a secret.

Rules come from: `settings.syntax` (host names, URLs, e-mail addresses, command lines),
RFC 6749 §3.1/§3.2 (endpoints carry no fragment) and §3.3 (scope-token),
RFC 8414 §2 (issuer: https, no query, no fragment), RFC 6750 §5.3 and DESIGN invariant 3 (bearer
tokens only over TLS), and the provider facts in reference/protocols.md (Google's device flow and
Gmail, §2.3; Microsoft's AADSTS9001023 for app-only on shared tenants, §1.1).

`require_secrets=False` skips only "secret missing" rules, so a document exported without secrets
can be parsed, merged with the stored secrets, and then validated in full.

Rules are msgids (`N_`) or `Text`s with parameters, shown in the reader's language. These rules
never touch the file system (the settings core does no I/O): paths are checked for their form
only (absolute, no control characters). Whether a CA file holds a certificate and whether a
delivery folder is not a file are checked by the service through its host-checks port
(`adapters.host_checks`), and their problems join these in one `ValidationError`. Commands (a POP
setting's `command`, the alert `hook`) are checked for syntax only (`syntax.command_rule`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.i18n import N_
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AlertSettings,
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
    Use,
    is_valid_pop_name,
)
from tokenpost.settings.syntax import (
    LINE_BREAK_OR_NUL,
    SPACE_OR_CONTROL,
    command_rule,
    is_addr_spec,
    is_host,
    is_hostname,
    is_https_url,
)
from tokenpost.text import Text

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")  # RFC 6749 §3.3
_GUID: Final = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")

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

NAME_RULE: Final = N_(
    "must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
)
PORT_RULE: Final = N_("must be an integer from 1 to 65535")
SERVER_RULE: Final = N_("must be a host name (RFC 1123, IDNA allowed) or an IPv4/IPv6 address")
BEARER_RULE: Final = N_("a bearer token is never sent unencrypted; use starttls or tls")
ADDRESS_RULE: Final = N_(
    "must be an e-mail address local@domain, no spaces, at most 254 characters"
)
FAILING_AFTER_RULE: Final = N_(
    "must be an integer from 60 to 604800 seconds (one minute to a week)"
)
GENERIC_SCOPE_RULE: Final = N_("a generic provider needs --scope (or --smtp-scope/--pop-scope)")
PATH_RULE: Final = N_("must be an absolute path, no control characters")
DELIVER_TO_RULE: Final = N_("must be an absolute directory path, no control characters")
MAX_RECIPIENTS: Final = 20


# -- providers ------------------------------------------------------------------------------------


def provider_problems(p: Provider, *, require_secrets: bool = True) -> tuple[FieldProblem, ...]:
    """Every rule `p` breaks, in field order."""
    return _one_per_field(
        [
            *_name_problems(p.name),
            *_client_id_problems(p.client_id),
            *_tenant_problems(p),
            *_issuer_problems(p),
            *_endpoint_problems(p),
            *_scope_problems(p),
            *_flow_problems(p, require_secrets=require_secrets),
            *_path_problems("ca_file", p.ca_file),
        ]
    )


def validate_provider(p: Provider, *, require_secrets: bool = True) -> None:
    """Raise `ValidationError` listing every rule `p` breaks."""
    problems = provider_problems(p, require_secrets=require_secrets)
    _raise_if(problems, subject=provider_subject(p.name))


def provider_subject(name: str) -> Text:
    """What a provider's `ValidationError` is about."""
    return Text("provider {name}", name=name)


def _name_problems(name: str) -> Iterator[FieldProblem]:
    if not _NAME.fullmatch(name):
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


# -- mail settings --------------------------------------------------------------------------------


def smtp_problems(
    s: SmtpSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> tuple[FieldProblem, ...]:
    """Every rule the SMTP setting breaks; `providers` are the known providers by name."""
    problems = list(_address_problems(s.server, s.port))
    if not 1 <= s.timeout <= 600:
        problems.append(FieldProblem("timeout", N_("must be an integer from 1 to 600 seconds")))
    if len(s.sender_name) > 200 or _CONTROL.search(s.sender_name):
        problems.append(
            FieldProblem(
                "sender_name", N_("at most 200 characters, no line breaks or control characters")
            )
        )
    if not is_addr_spec(s.sender_address):
        problems.append(FieldProblem("sender_address", ADDRESS_RULE))
    if s.auth is AuthMethod.APOP:
        problems.append(
            FieldProblem("auth", N_("apop is POP3 only; SMTP takes none, password or oauth2"))
        )
    else:
        problems.extend(_auth_problems(s, providers, require_secrets=require_secrets))
    problems.extend(_path_problems("ca_file", s.ca_file))
    return _one_per_field(problems)


def validate_smtp(
    s: SmtpSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> None:
    """Raise `ValidationError` listing every rule the SMTP setting breaks."""
    _raise_if(smtp_problems(s, providers, require_secrets=require_secrets), subject=s.setting_id)


def pop_problems(
    p: PopSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> tuple[FieldProblem, ...]:
    """Every rule the POP setting breaks; `providers` are the known providers by name."""
    problems: list[FieldProblem] = []
    if not is_valid_pop_name(p.name):
        problems.append(FieldProblem("name", NAME_RULE))
    problems.extend(_address_problems(p.server, p.port))
    if not 60 <= p.check_interval <= 86400:
        problems.append(
            FieldProblem("check_interval", N_("must be an integer from 60 to 86400 seconds"))
        )
    if not is_absolute_path(p.deliver_to):
        problems.append(FieldProblem("deliver_to", DELIVER_TO_RULE))
    problems.extend(_auth_problems(p, providers, require_secrets=require_secrets))
    problems.extend(_path_problems("ca_file", p.ca_file))
    if p.command is not None:
        problems.extend(_command_problems("command", p.command))
    return _one_per_field(problems)


def validate_pop(
    p: PopSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> None:
    """Raise `ValidationError` listing every rule the POP setting breaks."""
    _raise_if(pop_problems(p, providers, require_secrets=require_secrets), subject=p.setting_id)


# -- alerts ---------------------------------------------------------------------------------------


def alert_problems(a: AlertSettings) -> tuple[FieldProblem, ...]:
    """Every rule the alert settings break."""
    problems = list(_recipient_problems(a.recipients))
    if a.hook is not None:
        problems.extend(_command_problems("hook", a.hook))
    for field, seconds in (
        ("refresh_failing_after", a.refresh_failing_after),
        ("receive_failing_after", a.receive_failing_after),
    ):
        if not 60 <= seconds <= 604800:
            problems.append(FieldProblem(field, FAILING_AFTER_RULE))
    return _one_per_field(problems)


def validate_alerts(a: AlertSettings) -> None:
    """Raise `ValidationError` listing every rule the alert settings break."""
    _raise_if(alert_problems(a), subject="alerts")


def _recipient_problems(recipients: tuple[str, ...]) -> Iterator[FieldProblem]:
    if len(recipients) > MAX_RECIPIENTS:
        yield FieldProblem("recipients", Text("at most {count} addresses", count=MAX_RECIPIENTS))
    bad = next((r for r in recipients if not is_addr_spec(r)), None)
    if bad is not None:
        # An address is not secret; naming it tells which of up to 20 to fix (repr shows
        # control characters, the cut keeps the line short).
        shown = repr(bad if len(bad) <= 60 else bad[:60] + "…")
        yield FieldProblem(
            "recipients",
            Text(
                "each must be an e-mail address local@domain, no spaces, at most 254 "
                "characters; {address} is not",
                address=shown,
            ),
        )


def _command_problems(field: str, command: str) -> Iterator[FieldProblem]:
    # The value may hold a password given as an argument: the rule never quotes it.
    rule = command_rule(command)
    if rule is not None:
        yield FieldProblem(field, rule)


# -- shared by mail settings ---------------------------------------------------------------------


def _address_problems(server: str, port: int) -> Iterator[FieldProblem]:
    if not is_host(server):
        yield FieldProblem("server", SERVER_RULE)
    if not 1 <= port <= 65535:
        yield FieldProblem("port", PORT_RULE)


def _auth_problems(
    s: SmtpSetting | PopSetting, providers: Mapping[str, Provider], *, require_secrets: bool
) -> Iterator[FieldProblem]:
    """Each auth method takes exactly its own companion fields; stray ones are problems too."""
    auth = s.auth.value
    if s.auth is AuthMethod.NONE:
        for field, value in (("provider", s.provider), ("account", s.account)):
            if value is not None:
                yield FieldProblem(field, N_("must not be set with auth none"))
        if s.password is not None:
            yield FieldProblem("password", N_("must not be set with auth none"))
        return
    yield from _account_problems(s.account, auth)
    if s.auth is AuthMethod.OAUTH2:
        yield from _provider_ref_problems(s.provider, providers)
        if s.password is not None:
            yield FieldProblem("password", N_("only auth password or apop uses a password"))
        yield from _bearer_transport_problems(s.security)
    else:
        if s.provider is not None:
            yield FieldProblem("provider", N_("only auth oauth2 uses a provider"))
        yield from _password_problems(s.password, auth, require_secrets=require_secrets)


def _account_problems(account: str | None, auth: str) -> Iterator[FieldProblem]:
    if not account:
        yield FieldProblem(
            "account",
            Text("required with auth {auth} (the e-mail address or user name)", auth=auth),
        )
    elif len(account) > 256 or SPACE_OR_CONTROL.search(account):
        yield FieldProblem("account", N_("at most 256 characters, no spaces or control characters"))


def _provider_ref_problems(
    provider: str | None, providers: Mapping[str, Provider]
) -> Iterator[FieldProblem]:
    if provider is None:
        yield FieldProblem("provider", N_("required with auth oauth2"))
    elif provider not in providers:
        # The name is not secret; quoting it helps spot a typo.
        yield FieldProblem("provider", Text("unknown provider {name!r}", name=provider))


def _password_problems(
    password: Secret | None, auth: str, *, require_secrets: bool
) -> Iterator[FieldProblem]:
    if password is None:
        if require_secrets:
            yield FieldProblem("password", Text("required with auth {auth}", auth=auth))
    elif not password:
        yield FieldProblem("password", N_("must not be empty"))
    elif LINE_BREAK_OR_NUL.search(password.reveal()):
        # USER/PASS and AUTH lines are CRLF-terminated protocol lines (RFC 1939 §3).
        yield FieldProblem("password", N_("must not contain line breaks or NUL"))


def _bearer_transport_problems(security: Security) -> Iterator[FieldProblem]:
    """DESIGN invariant 3: a bearer token never crosses an unencrypted connection (RFC 6750 §5.3).

    This is the one place the rule lives. The planned --allow-plaintext exception for loopback
    servers belongs here, as an explicit parameter with the server; nothing else may relax it.
    """
    if security is Security.NONE:
        yield FieldProblem("security", BEARER_RULE)


def is_absolute_path(path: str) -> bool:
    """An absolute POSIX path without control characters (its form only: nothing is looked up)."""
    return path.startswith("/") and not _CONTROL.search(path)


def _path_problems(field: str, path: str | None) -> Iterator[FieldProblem]:
    if path is not None and not is_absolute_path(path):
        yield FieldProblem(field, PATH_RULE)


def _one_per_field(problems: Iterable[FieldProblem]) -> tuple[FieldProblem, ...]:
    """The first problem of each field: the most basic rule it breaks, one message per field."""
    first: dict[str, FieldProblem] = {}
    for problem in problems:
        first.setdefault(problem.field, problem)
    return tuple(first.values())


def _raise_if(problems: tuple[FieldProblem, ...], *, subject: str | Text) -> None:
    if problems:
        raise ValidationError(problems, subject=subject)
