"""Settings validation: one problem per bad field, named like the CLI option, all at once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AuthMethod,
    Flow,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.settings.provider_rules import provider_problems, validate_provider
from tokenpost.settings.validate import pop_problems, smtp_problems, validate_pop, validate_smtp

MS = Provider("m365", Preset.MICROSOFT, "00001111-aaaa-2222-bbbb-3333cccc4444")
GOOGLE = Provider("gmail", Preset.GOOGLE, "123-abc.apps.googleusercontent.com", Secret("gsecret"))
GENERIC = Provider(
    "idp", Preset.GENERIC, "tokenpost", issuer="https://id.example.com/realms/x", scope=("mail",)
)
PROVIDERS = {p.name: p for p in (MS, GOOGLE, GENERIC)}
SMTP = SmtpSetting(
    server="smtp.office365.com",
    port=587,
    security=Security.STARTTLS,
    timeout=30,
    sender_name="Printer 3F",
    sender_address="printer@contoso.com",
    auth=AuthMethod.OAUTH2,
    provider="m365",
    account="printer@contoso.com",
)
POP = PopSetting(
    name="fax",
    server="outlook.office365.com",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.OAUTH2,
    deliver_to="/var/spool/tokenpost/fax",
    provider="m365",
    account="fax@contoso.com",
)
PASSWORD_POP = replace(POP, auth=AuthMethod.PASSWORD, provider=None, password=Secret("pw"))


def fields_of(problems: tuple[FieldProblem, ...]) -> set[str]:
    return {p.field for p in problems}


def test_the_base_settings_are_valid() -> None:
    for provider in PROVIDERS.values():
        validate_provider(provider)
    validate_smtp(SMTP, PROVIDERS)
    validate_pop(POP, PROVIDERS)
    validate_pop(PASSWORD_POP, PROVIDERS)


PROVIDER_CASES = [
    ("empty name", MS, {"name": ""}, "name"),
    ("name starts with dash", MS, {"name": "-x"}, "name"),
    ("name too long", MS, {"name": "a" * 64}, "name"),
    ("name with space", MS, {"name": "my idp"}, "name"),
    ("empty client_id", MS, {"client_id": ""}, "client_id"),
    ("client_id with space", MS, {"client_id": "a b"}, "client_id"),
    ("client_id with NUL", MS, {"client_id": "a\x00"}, "client_id"),
    ("tenant on google", GOOGLE, {"tenant": "common"}, "tenant"),
    ("tenant not a tenant", MS, {"tenant": "not a tenant"}, "tenant"),
    ("tenant single label", MS, {"tenant": "contoso"}, "tenant"),
    ("issuer on microsoft", MS, {"issuer": "https://login.example.com"}, "issuer"),
    ("issuer over http", GENERIC, {"issuer": "http://id.example.com"}, "issuer"),
    ("issuer with query", GENERIC, {"issuer": "https://id.example.com/?x=1"}, "issuer"),
    ("issuer with fragment", GENERIC, {"issuer": "https://id.example.com/#x"}, "issuer"),
    ("generic without issuer or token endpoint", GENERIC, {"issuer": None}, "issuer"),
    ("token endpoint over http", MS, {"token_endpoint": "http://127.0.0.1/t"}, "token_endpoint"),
    ("token endpoint userinfo", MS, {"token_endpoint": "https://u:p@x.com/t"}, "token_endpoint"),
    ("token endpoint bad port", MS, {"token_endpoint": "https://x.com:99999/"}, "token_endpoint"),
    ("token endpoint no host", MS, {"token_endpoint": "https:///t"}, "token_endpoint"),
    (
        "revocation with fragment",
        GOOGLE,
        {"revocation_endpoint": "https://x.com/r#f"},
        "revocation_endpoint",
    ),
    ("authorize not a URL", MS, {"authorization_endpoint": "login"}, "authorization_endpoint"),
    (
        "device endpoint with newline",
        MS,
        {"device_authorization_endpoint": "https://x.com/\nd"},
        "device_authorization_endpoint",
    ),
    ("scope with space", MS, {"scope": ("a b",)}, "scope"),
    ("scope with quote", MS, {"scope": ('a"b',)}, "scope"),
    ("empty scope token", MS, {"scope": ("",)}, "scope"),
    ("no scope at all", MS, {"scope": ()}, "scope"),
    ("smtp scope with backslash", MS, {"smtp_scope": ("a\\b",)}, "smtp_scope"),
    ("pop scope non-ascii", MS, {"pop_scope": ("é",)}, "pop_scope"),
    ("generic without pop scope", GENERIC, {"scope": None, "smtp_scope": ("m",)}, "scope"),
    ("generic without any scope", GENERIC, {"scope": None}, "scope"),
    ("app flow without secret", MS, {"flow": Flow.APP, "tenant": "contoso.com"}, "client_secret"),
    (
        "app flow on common",
        MS,
        {"flow": Flow.APP, "client_secret": Secret("s"), "tenant": "common"},
        "tenant",
    ),
    (
        "app flow on Consumers",
        MS,
        {"flow": Flow.APP, "client_secret": Secret("s"), "tenant": "Consumers"},
        "tenant",
    ),
    ("app flow without tenant", MS, {"flow": Flow.APP, "client_secret": Secret("s")}, "tenant"),
    ("app flow on google", GOOGLE, {"flow": Flow.APP}, "flow"),
    ("google device flow, default scope", GOOGLE, {"flow": Flow.DEVICE}, "flow"),
    (
        "google device flow, gmail scope",
        GOOGLE,
        {"flow": Flow.DEVICE, "scope": ("openid",), "pop_scope": ("https://mail.google.com/",)},
        "flow",
    ),
    (
        "generic browser without authorize",
        GENERIC,
        {"issuer": None, "token_endpoint": "https://x.com/t", "flow": Flow.BROWSER},
        "authorization_endpoint",
    ),
    (
        "generic device without device endpoint",
        GENERIC,
        {"issuer": None, "token_endpoint": "https://x.com/t"},
        "device_authorization_endpoint",
    ),
    ("empty client secret", GOOGLE, {"client_secret": Secret("")}, "client_secret"),
    ("relative ca file", MS, {"ca_file": "ca.pem"}, "ca_file"),
    ("empty ca file", MS, {"ca_file": ""}, "ca_file"),
]


@pytest.mark.parametrize(
    ("base", "changes", "field"),
    [case[1:] for case in PROVIDER_CASES],
    ids=[case[0] for case in PROVIDER_CASES],
)
def test_a_bad_provider_field_is_named(
    base: Provider, changes: dict[str, object], field: str
) -> None:
    problems = provider_problems(replace(base, **changes))  # type: ignore[arg-type]
    assert field in fields_of(problems)


VALID_PROVIDERS = [
    replace(MS, tenant="organizations"),
    replace(MS, tenant="Common"),
    replace(MS, tenant="aaaabbbb-0000-cccc-1111-dddd2222eeee"),
    replace(MS, tenant="contoso.onmicrosoft.com", flow=Flow.BROWSER),
    replace(MS, flow=Flow.APP, client_secret=Secret("s"), tenant="contoso.com"),
    replace(MS, scope=("https://outlook.office.com/SMTP.Send", "offline_access")),
    replace(GOOGLE, flow=Flow.DEVICE, scope=("openid", "email")),
    replace(GOOGLE, token_endpoint="https://[::1]:8443/token?x=1"),
    replace(
        GENERIC,
        issuer=None,
        token_endpoint="https://x.com/t",
        device_authorization_endpoint="https://x.com/d",
    ),
    replace(GENERIC, scope=None, smtp_scope=("a",), pop_scope=("b",)),
    replace(GENERIC, flow=Flow.APP, client_secret=Secret("s")),
    replace(MS, name="a" * 63),
]


@pytest.mark.parametrize("provider", VALID_PROVIDERS)
def test_a_good_provider_has_no_problems(provider: Provider) -> None:
    assert provider_problems(provider) == ()


def test_the_rules_check_a_path_by_its_form_never_on_the_file_system(tmp_path: Path) -> None:
    # Whether the file holds a certificate is the host checks' business (adapters.host_checks).
    missing = str(tmp_path / "no-such-ca.pem")
    assert provider_problems(replace(MS, ca_file=missing)) == ()
    assert smtp_problems(replace(SMTP, ca_file=missing), PROVIDERS) == ()
    assert pop_problems(replace(POP, ca_file=missing, deliver_to=missing), PROVIDERS) == ()


def test_missing_secrets_can_be_excused() -> None:
    app = replace(MS, flow=Flow.APP, tenant="contoso.com")
    assert "client_secret" in fields_of(provider_problems(app))
    assert provider_problems(app, require_secrets=False) == ()
    no_password = replace(PASSWORD_POP, password=None)
    assert pop_problems(no_password, PROVIDERS, require_secrets=False) == ()
    empty = replace(PASSWORD_POP, password=Secret(""))
    assert fields_of(pop_problems(empty, PROVIDERS, require_secrets=False)) == {"password"}


MAIL_CASES = [
    ("empty server", {"server": ""}, "server"),
    ("server with space", {"server": "mail server"}, "server"),
    ("server empty label", {"server": "mail..example.com"}, "server"),
    ("server label starts with dash", {"server": "-mail.example.com"}, "server"),
    ("server with underscore", {"server": "mail_1.example.com"}, "server"),
    ("server all-numeric tld", {"server": "256.1.1.1"}, "server"),
    ("server trailing dot", {"server": "mail.example.com."}, "server"),
    ("server bracketed ipv6", {"server": "[::1]"}, "server"),
    ("server url", {"server": "smtp://mail.example.com"}, "server"),
    ("server label too long", {"server": "a" * 64 + ".com"}, "server"),
    ("port zero", {"port": 0}, "port"),
    ("port too big", {"port": 65536}, "port"),
    ("oauth2 without provider", {"provider": None}, "provider"),
    ("oauth2 unknown provider", {"provider": "nope"}, "provider"),
    ("oauth2 without account", {"account": None}, "account"),
    ("oauth2 empty account", {"account": ""}, "account"),
    ("oauth2 account with space", {"account": "a b@x.com"}, "account"),
    ("oauth2 with password", {"password": Secret("pw")}, "password"),
    ("oauth2 without encryption", {"security": Security.NONE}, "security"),
    ("password without password", {"auth": AuthMethod.PASSWORD, "provider": None}, "password"),
    ("password with provider", {"auth": AuthMethod.PASSWORD, "password": Secret("pw")}, "provider"),
    (
        "password without account",
        {"auth": AuthMethod.PASSWORD, "provider": None, "account": None, "password": Secret("pw")},
        "account",
    ),
    (
        "password with line break",
        {"auth": AuthMethod.PASSWORD, "provider": None, "password": Secret("a\r\nQUIT")},
        "password",
    ),
    (
        "password empty",
        {"auth": AuthMethod.PASSWORD, "provider": None, "password": Secret("")},
        "password",
    ),
    ("none with provider", {"auth": AuthMethod.NONE, "account": None}, "provider"),
    ("none with account", {"auth": AuthMethod.NONE, "provider": None}, "account"),
    (
        "none with password",
        {"auth": AuthMethod.NONE, "provider": None, "account": None, "password": Secret("p")},
        "password",
    ),
    ("relative ca file", {"ca_file": "certs/ca.pem"}, "ca_file"),
    ("ca file with a line break", {"ca_file": "/etc/ca\n.pem"}, "ca_file"),
]
SMTP_CASES = [
    ("timeout zero", {"timeout": 0}, "timeout"),
    ("timeout too long", {"timeout": 601}, "timeout"),
    ("sender name with newline", {"sender_name": "a\nBcc: x@y.z"}, "sender_name"),
    ("sender name too long", {"sender_name": "x" * 201}, "sender_name"),
    ("sender address no at", {"sender_address": "printer"}, "sender_address"),
    ("sender address no domain", {"sender_address": "printer@"}, "sender_address"),
    ("sender address no local part", {"sender_address": "@contoso.com"}, "sender_address"),
    ("sender address with space", {"sender_address": "a b@contoso.com"}, "sender_address"),
    ("sender address display form", {"sender_address": "P <p@contoso.com>"}, "sender_address"),
    ("sender address double dot", {"sender_address": "a..b@contoso.com"}, "sender_address"),
    ("sender address bad domain", {"sender_address": "a@contoso..com"}, "sender_address"),
    ("sender address local too long", {"sender_address": "a" * 65 + "@x.com"}, "sender_address"),
    (
        "sender address too long",
        {"sender_address": "a" * 64 + "@" + ("b" * 62 + ".") * 3 + "com"},
        "sender_address",
    ),
    ("apop on smtp", {"auth": AuthMethod.APOP, "provider": None, "password": Secret("p")}, "auth"),
]
POP_CASES = [
    ("empty name", {"name": ""}, "name"),
    ("name with colon", {"name": "fax:1"}, "name"),
    ("check interval too short", {"check_interval": 59}, "check_interval"),
    ("check interval too long", {"check_interval": 86401}, "check_interval"),
    ("deliver_to empty", {"deliver_to": ""}, "deliver_to"),
    ("deliver_to relative", {"deliver_to": "spool/fax"}, "deliver_to"),
    ("deliver_to with NUL", {"deliver_to": "/spool/\x00fax"}, "deliver_to"),
    ("apop without password", {"auth": AuthMethod.APOP, "provider": None}, "password"),
    ("command empty", {"command": ""}, "command"),
    ("command blank", {"command": "  \t"}, "command"),
    ("command relative program", {"command": "./print.sh"}, "command"),
    ("command open quote", {"command": "lpr 'a"}, "command"),
    ("command trailing backslash", {"command": "lpr \\"}, "command"),
    ("command with newline", {"command": "lpr\nreboot"}, "command"),
    ("command with NUL", {"command": "lpr\x00"}, "command"),
    ("command empty program", {"command": "'' x"}, "command"),
]


@pytest.mark.parametrize(
    ("changes", "field"),
    [case[1:] for case in MAIL_CASES + SMTP_CASES],
    ids=[case[0] for case in MAIL_CASES + SMTP_CASES],
)
def test_a_bad_smtp_field_is_named(changes: dict[str, object], field: str) -> None:
    problems = smtp_problems(replace(SMTP, **changes), PROVIDERS)  # type: ignore[arg-type]
    assert field in fields_of(problems)


@pytest.mark.parametrize(
    ("changes", "field"),
    [case[1:] for case in MAIL_CASES + POP_CASES],
    ids=[case[0] for case in MAIL_CASES + POP_CASES],
)
def test_a_bad_pop_field_is_named(changes: dict[str, object], field: str) -> None:
    problems = pop_problems(replace(POP, **changes), PROVIDERS)  # type: ignore[arg-type]
    assert field in fields_of(problems)


@pytest.mark.parametrize(
    "changes",
    [
        {"server": "192.0.2.25"},
        {"server": "2001:db8::25"},
        {"server": "localhost"},
        {"server": "mail.bücher.example"},
        {"port": 465, "security": Security.TLS},
        {"timeout": 600},
        {"sender_name": ""},
        {"sender_name": "Drucker „Büro“ 3. OG"},
        {"sender_address": "first.last+scan@contoso.com"},
        {"sender_address": "drucker@bücher.example"},
        {"sender_address": "ü@bücher.example"},
        {"auth": AuthMethod.NONE, "provider": None, "account": None},
        {"auth": AuthMethod.NONE, "provider": None, "account": None, "security": Security.NONE},
        {"auth": AuthMethod.PASSWORD, "provider": None, "password": Secret("pw")},
        {
            "auth": AuthMethod.PASSWORD,
            "provider": None,
            "password": Secret("pw"),
            "security": Security.NONE,
        },
    ],
)
def test_a_good_smtp_setting_has_no_problems(changes: dict[str, object]) -> None:
    assert smtp_problems(replace(SMTP, **changes), PROVIDERS) == ()  # type: ignore[arg-type]


def test_apop_is_a_pop_method() -> None:
    apop = replace(POP, auth=AuthMethod.APOP, provider=None, password=Secret("pw"))
    assert pop_problems(apop, PROVIDERS) == ()


def test_all_problems_are_reported_at_once() -> None:
    bad = replace(SMTP, server="", port=0, timeout=0, provider="nope", security=Security.NONE)
    with pytest.raises(ValidationError) as caught:
        validate_smtp(bad, PROVIDERS)
    assert caught.value.subject == "smtp"
    assert [p.field for p in caught.value.problems] == [
        "server",
        "port",
        "timeout",
        "provider",
        "security",
    ]
    assert "unknown provider 'nope'" in str(caught.value)
    assert "port: must be an integer from 1 to 65535" in str(caught.value)


def test_the_rules_read_as_the_brief_says() -> None:
    google_device = provider_problems(replace(GOOGLE, flow=Flow.DEVICE))
    assert (
        FieldProblem("flow", "Google's device flow refuses the Gmail scope; use --flow browser")
        in google_device
    )
    generic = provider_problems(replace(GENERIC, scope=None))
    assert (
        FieldProblem("scope", "a generic provider needs --scope (or --smtp-scope/--pop-scope)")
        in generic
    )
    plain = smtp_problems(replace(SMTP, security=Security.NONE), PROVIDERS)
    assert plain == (
        FieldProblem("security", "a bearer token is never sent unencrypted; use starttls or tls"),
    )


def test_a_field_gets_one_message() -> None:
    problems = provider_problems(replace(MS, flow=Flow.APP, tenant="not a tenant"))
    assert [p.field for p in problems] == ["tenant", "client_secret"]
    assert problems[0].rule.startswith("must be common, organizations, consumers")
    generic = provider_problems(replace(GENERIC, issuer="http://x", token_endpoint=None))
    assert [p.field for p in generic] == ["issuer"]


def test_pop_errors_name_the_setting() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_pop(replace(POP, check_interval=10), PROVIDERS)
    assert caught.value.subject == "pop:fax"
    assert str(caught.value) == (
        "pop:fax: check_interval: must be an integer from 60 to 86400 seconds"
    )
    with pytest.raises(ValidationError, match=r"^provider m365: client_id: "):
        validate_provider(replace(MS, client_id=""))


# -- properties -----------------------------------------------------------------------------------

_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
hostnames = (
    st.lists(_labels, min_size=1, max_size=4)
    .filter(lambda labels: not labels[-1].isdigit())
    .map(".".join)
)


@given(hostnames)
def test_any_rfc1123_hostname_is_a_server(host: str) -> None:
    assert "server" not in fields_of(smtp_problems(replace(SMTP, server=host), PROVIDERS))


@given(st.ip_addresses())
def test_any_ip_address_is_a_server(address: object) -> None:
    assert smtp_problems(replace(SMTP, server=str(address)), PROVIDERS) == ()


@given(hostnames, st.sampled_from(" _/:@,;\\\t\n\x00"))
def test_a_hostname_with_a_foreign_character_is_refused(host: str, foreign: str) -> None:
    bad = host[: len(host) // 2] + foreign + host[len(host) // 2 :]
    assert "server" in fields_of(pop_problems(replace(POP, server=bad), PROVIDERS))


@given(st.integers(min_value=1, max_value=65535))
def test_every_port_in_range_is_accepted(port: int) -> None:
    assert smtp_problems(replace(SMTP, port=port), PROVIDERS) == ()


@given(st.integers().filter(lambda n: not 1 <= n <= 65535))
def test_every_port_out_of_range_is_refused(port: int) -> None:
    assert fields_of(pop_problems(replace(POP, port=port), PROVIDERS)) == {"port"}


# The marker makes a leak of any part of the value visible; no rule contains it.
secrets_text = st.text().map(lambda text: f"\u27ea{text}\u27eb")


@given(password=secrets_text, client_secret=secrets_text)
def test_messages_never_contain_a_secret(password: str, client_secret: str) -> None:
    provider = replace(
        MS, client_id="", flow=Flow.APP, tenant="common", client_secret=Secret(client_secret)
    )
    smtp = replace(SMTP, auth=AuthMethod.PASSWORD, password=Secret(password), server="", timeout=0)
    pop = replace(POP, auth=AuthMethod.NONE, provider=None, account=None, password=Secret(password))
    with pytest.raises(ValidationError) as bad_provider:
        validate_provider(provider)
    with pytest.raises(ValidationError) as bad_smtp:
        validate_smtp(smtp, PROVIDERS)
    with pytest.raises(ValidationError) as bad_pop:
        validate_pop(pop, PROVIDERS)
    for error in (bad_provider.value, bad_smtp.value, bad_pop.value):
        text = str(error) + repr(error.problems)
        assert "\u27ea" not in text
        assert "\u27eb" not in text
