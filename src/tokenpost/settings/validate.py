"""Settings validation: every rule a mail setting or the alert settings break, at once (the
provider rules are `settings.provider_rules`).

Problems are `FieldProblem(field, rule)`; the field is the CLI option without dashes ("port",
"sender_address", "client_id") so the administrator knows what to change. `*_problems` return the
problems; `validate_*` raise one `ValidationError` holding all of them. No rule text contains a
field's value when the field can hold a secret.

Rules come from: `settings.syntax` (host names, e-mail addresses, command lines), RFC 6750 §5.3
and DESIGN invariant 3 (bearer tokens only over TLS).

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

from collections.abc import Iterator, Mapping
from typing import Final

from tokenpost.errors import FieldProblem
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AlertSettings,
    AuthMethod,
    PopSetting,
    Provider,
    Security,
    SmtpSetting,
    is_valid_pop_name,
)
from tokenpost.settings.rule_tools import (
    CONTROL,
    NAME_RULE,
    is_absolute_path,
    one_per_field,
    path_problems,
    raise_if,
)
from tokenpost.settings.syntax import (
    LINE_BREAK_OR_NUL,
    SPACE_OR_CONTROL,
    command_rule,
    is_addr_spec,
    is_host,
)
from tokenpost.text import N_, Text

PORT_RULE: Final = N_("must be an integer from 1 to 65535")
SERVER_RULE: Final = N_("must be a host name (RFC 1123, IDNA allowed) or an IPv4/IPv6 address")
BEARER_RULE: Final = N_("a bearer token is never sent unencrypted; use starttls or tls")
ADDRESS_RULE: Final = N_(
    "must be an e-mail address local@domain, no spaces, at most 254 characters"
)
FAILING_AFTER_RULE: Final = N_(
    "must be an integer from 60 to 604800 seconds (one minute to a week)"
)
DELIVER_TO_RULE: Final = N_("must be an absolute directory path, no control characters")
MAX_RECIPIENTS: Final = 20


# -- mail settings --------------------------------------------------------------------------------


def smtp_problems(
    s: SmtpSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> tuple[FieldProblem, ...]:
    """Every rule the SMTP setting breaks; `providers` are the known providers by name."""
    problems = list(_address_problems(s.server, s.port))
    if not 1 <= s.timeout <= 600:
        problems.append(FieldProblem("timeout", N_("must be an integer from 1 to 600 seconds")))
    if len(s.sender_name) > 200 or CONTROL.search(s.sender_name):
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
    problems.extend(path_problems("ca_file", s.ca_file))
    return one_per_field(problems)


def validate_smtp(
    s: SmtpSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> None:
    """Raise `ValidationError` listing every rule the SMTP setting breaks."""
    raise_if(smtp_problems(s, providers, require_secrets=require_secrets), subject=s.setting_id)


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
    problems.extend(path_problems("ca_file", p.ca_file))
    if p.command is not None:
        problems.extend(_command_problems("command", p.command))
    return one_per_field(problems)


def validate_pop(
    p: PopSetting, providers: Mapping[str, Provider], *, require_secrets: bool = True
) -> None:
    """Raise `ValidationError` listing every rule the POP setting breaks."""
    raise_if(pop_problems(p, providers, require_secrets=require_secrets), subject=p.setting_id)


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
    return one_per_field(problems)


def validate_alerts(a: AlertSettings) -> None:
    """Raise `ValidationError` listing every rule the alert settings break."""
    raise_if(alert_problems(a), subject="alerts")


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
