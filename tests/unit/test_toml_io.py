"""Settings as TOML: deterministic export, strict parse, secrets kept across an edit."""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import ValidationError
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
)
from tokenpost.settings.toml_io import (
    ConfigDocument,
    export_toml,
    merge_secrets,
    parse_toml,
    validate_document,
)

M365 = Provider(
    "m365",
    Preset.MICROSOFT,
    "00001111-aaaa-2222-bbbb-3333cccc4444",
    tenant="contoso.onmicrosoft.com",
    scope=("https://outlook.office.com/SMTP.Send", "offline_access"),
)
IDP = Provider(
    "idp.example",
    Preset.GENERIC,
    "tokenpost",
    client_secret=Secret("client-s3cret"),
    flow=Flow.BROWSER,
    issuer="https://id.example.com/realms/office",
    scope=("mail",),
)
SMTP = SmtpSetting(
    server="smtp.office365.com",
    port=587,
    security=Security.STARTTLS,
    timeout=30,
    sender_name='Printer "3F"',
    sender_address="printer@contoso.com",
    auth=AuthMethod.OAUTH2,
    provider="m365",
    account="printer@contoso.com",
)
FAX = PopSetting(
    name="fax",
    server="pop.example.com",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.PASSWORD,
    deliver_to="/var/spool/tokenpost/fax",
    account="fax@example.com",
    password=Secret("pop-s3cret"),
    command="lpr -P 'Fax Printer'",
)
ALERTS = AlertSettings(recipients=("admin@contoso.com", "desk@contoso.com"), hook="page-admin")
DOC = ConfigDocument(providers=(IDP, M365), smtp=SMTP, pop=(FAX,), alerts=ALERTS)

GOLDEN = """\
# tokenpost settings: providers, the SMTP setting, the POP settings and alerts.
# Keys are the command-line options with '_' for '-'; durations are in seconds.
# Secrets (client_secret, password) are left out; importing keeps the stored ones.

[providers."idp.example"]
preset = "generic"
client_id = "tokenpost"
flow = "browser"
issuer = "https://id.example.com/realms/office"
scope = ["mail"]

[providers.m365]
preset = "microsoft"
client_id = "00001111-aaaa-2222-bbbb-3333cccc4444"
tenant = "contoso.onmicrosoft.com"
scope = ["https://outlook.office.com/SMTP.Send", "offline_access"]

[smtp]
server = "smtp.office365.com"
port = 587
security = "starttls"
timeout = 30
sender_name = "Printer \\"3F\\""
sender_address = "printer@contoso.com"
auth = "oauth2"
provider = "m365"
account = "printer@contoso.com"

[pop.fax]
server = "pop.example.com"
port = 995
security = "tls"
check_interval = 300
auth = "password"
deliver_to = "/var/spool/tokenpost/fax"
account = "fax@example.com"
leave_on_server = false
command = "lpr -P 'Fax Printer'"

[alerts]
recipients = ["admin@contoso.com", "desk@contoso.com"]
hook = "page-admin"
refresh_failing_after = 3600
receive_failing_after = 3600
"""


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_toml(text, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


# -- export ---------------------------------------------------------------------------------------


def test_export_is_the_golden_text() -> None:
    assert export_toml(DOC) == GOLDEN


def test_export_does_not_depend_on_item_order() -> None:
    shuffled = ConfigDocument(providers=(M365, IDP), smtp=SMTP, pop=(replace(FAX, name="b"), FAX))
    in_order = ConfigDocument(providers=(IDP, M365), smtp=SMTP, pop=(FAX, replace(FAX, name="b")))
    assert export_toml(shuffled) == export_toml(in_order)


def test_secrets_are_written_only_when_asked_for() -> None:
    without = export_toml(DOC)
    assert "s3cret" not in without
    assert "WARNING" not in without
    with_secrets = export_toml(DOC, include_secrets=True)
    assert 'client_secret = "client-s3cret"' in with_secrets
    assert 'password = "pop-s3cret"' in with_secrets
    assert with_secrets.splitlines()[2].startswith("# WARNING: this file contains secrets")


def test_every_model_field_is_exported() -> None:
    full_provider = replace(
        IDP,
        tenant="t",
        authorization_endpoint="https://a",
        token_endpoint="https://t",
        device_authorization_endpoint="https://d",
        revocation_endpoint="https://r",
        smtp_scope=("s",),
        pop_scope=("p",),
        ca_file="/ca.pem",
        redirect_uri="http://127.0.0.1:8400/cb",
        proxy="http://proxy:3128",
    )
    full_smtp = replace(SMTP, password=Secret("x"), ca_file="/ca.pem")
    full_pop = replace(FAX, provider="p", ca_file="/ca.pem", leave_on_server=True)
    doc = ConfigDocument(providers=(full_provider,), smtp=full_smtp, pop=(full_pop,), alerts=ALERTS)
    data = tomllib.loads(export_toml(doc, include_secrets=True))
    for table, item in (
        (data["providers"]["idp.example"], full_provider),
        (data["smtp"], full_smtp),
        (data["pop"]["fax"], full_pop),
        (data["alerts"], ALERTS),
    ):
        assert set(table) == {f.name for f in fields(item)} - {"name"}


@given(st.text())
def test_any_string_survives_export(text: str) -> None:
    doc = ConfigDocument(
        providers=(replace(M365, name=text, scope=(text, "x")),),
        smtp=replace(SMTP, sender_name=text, password=Secret(text)),
    )
    data = tomllib.loads(export_toml(doc, include_secrets=True))
    assert data["providers"][text]["scope"] == [text, "x"]
    assert data["smtp"]["sender_name"] == text
    assert data["smtp"]["password"] == text


def test_invisible_characters_are_escaped_for_the_reviewer() -> None:
    text = export_toml(
        ConfigDocument(smtp=replace(SMTP, sender_name="a\u202eb\x7fc\u2028\U000e0001"))
    )
    assert 'sender_name = "a\\u202Eb\\u007Fc\\u2028\\U000E0001"' in text


def test_a_lone_surrogate_cannot_be_exported() -> None:
    undecodable = replace(FAX, deliver_to="/spool/\udcff")
    with pytest.raises(ValidationError, match=r"pop\.fax\.deliver_to: is not valid Unicode"):
        export_toml(ConfigDocument(pop=(undecodable,)))


def test_duplicate_names_are_refused() -> None:
    doc = ConfigDocument(providers=(M365, M365), smtp=SMTP, pop=(FAX, FAX))
    with pytest.raises(ValidationError) as caught:
        export_toml(doc)
    assert [str(p) for p in caught.value.problems] == [
        "providers.m365: duplicate name",
        "pop.fax: duplicate name",
    ]
    with pytest.raises(ValidationError, match="duplicate name"):
        validate_document(doc)


# -- round trip -----------------------------------------------------------------------------------

hosts = st.sampled_from(["mail.example.com", "192.0.2.7", "2001:db8::1", "mail.bücher.example"])
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
secrets = st.text(min_size=1).filter(lambda s: not ({"\r", "\n", "\x00"} & set(s))).map(Secret)
commands = st.sampled_from([None, "lpr", "/usr/bin/lp -d 'Büro 3'", 'print-fax "a b" \\"c'])
addresses = st.sampled_from(["a@example.com", "ops+alerts@bücher.example", "ü@example.org"])
alert_settings = st.builds(
    AlertSettings,
    recipients=st.lists(addresses, max_size=20).map(tuple),
    hook=commands,
    refresh_failing_after=st.integers(60, 604800),
    receive_failing_after=st.integers(60, 604800),
)
scopes = st.lists(st.from_regex(r"[\x21\x23-\x5B\x5D-\x7E]{1,12}", fullmatch=True), min_size=1)


@st.composite
def documents(draw: st.DrawFn) -> ConfigDocument:
    provider_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    providers = tuple(
        Provider(
            name,
            Preset.GENERIC,
            draw(st.from_regex(r"[!-~]{1,30}", fullmatch=True)),
            client_secret=draw(st.none() | secrets),
            flow=draw(st.sampled_from([None, Flow.DEVICE])),
            issuer="https://id.example.com/" + name,
            scope=tuple(draw(scopes)),
            pop_scope=draw(st.none() | scopes.map(tuple)),
        )
        for name in sorted(provider_names)
    )
    smtp = SmtpSetting(
        server=draw(hosts),
        port=draw(st.integers(1, 65535)),
        security=draw(st.sampled_from([Security.STARTTLS, Security.TLS])),
        timeout=draw(st.integers(1, 600)),
        sender_name=draw(st.text(max_size=200).filter(lambda s: s.isprintable())),
        sender_address="printer@example.com",
        auth=AuthMethod.OAUTH2,
        provider=draw(st.sampled_from(provider_names)),
        account=draw(st.emails()),
    )
    pops = tuple(
        PopSetting(
            name=name,
            server=draw(hosts),
            port=draw(st.integers(1, 65535)),
            security=draw(st.sampled_from(Security)),
            check_interval=draw(st.integers(60, 86400)),
            auth=AuthMethod.APOP,
            deliver_to="/var/spool/" + draw(st.text().filter(lambda s: s.isprintable())),
            account="fax",
            password=draw(secrets),
            leave_on_server=draw(st.booleans()),
            command=draw(commands),
        )
        for name in sorted(draw(st.lists(names, max_size=3, unique=True)))
    )
    return ConfigDocument(
        providers=providers,
        smtp=draw(st.none() | st.just(smtp)),
        pop=pops,
        alerts=draw(st.none() | alert_settings),
    )


@given(documents())
def test_export_then_parse_gives_the_same_document(doc: ConfigDocument) -> None:
    assert parse_toml(export_toml(doc, include_secrets=True)) == doc


@given(documents())
def test_export_without_secrets_then_merge_gives_the_same_document(doc: ConfigDocument) -> None:
    imported = parse_toml(export_toml(doc))
    merged = merge_secrets(imported, doc)
    validate_document(merged)
    assert merged == doc


# -- parse ----------------------------------------------------------------------------------------


def test_unknown_keys_and_tables_are_named() -> None:
    text = GOLDEN.replace("port = 995", "prot = 995\nport = 995") + "\n[fax]\nx = 1\n"
    assert problems_of(text) == ["pop.fax.prot: unknown key", "fax: unknown key"]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("port = 587", 'port = "587"', "smtp.port: must be an integer"),
        ("port = 587", "port = true", "smtp.port: must be an integer"),
        ("port = 587", "port = 587.0", "smtp.port: must be an integer"),
        ("timeout = 30", "", "smtp.timeout: required"),
        ('server = "smtp.office365.com"', "server = 1", "smtp.server: must be a string"),
        (
            'security = "starttls"',
            'security = "ssl"',
            "smtp.security: must be one of starttls, tls, none",
        ),
        (
            'preset = "microsoft"',
            'preset = "azure"',
            "providers.m365.preset: must be one of microsoft, google, generic",
        ),
        (
            'scope = ["mail"]',
            'scope = "mail"',
            "providers.idp.example.scope: must be a list of strings",
        ),
        (
            'scope = ["mail"]',
            "scope = [1]",
            "providers.idp.example.scope: must be a list of strings",
        ),
        (
            'flow = "browser"',
            'flow = "magic"',
            "providers.idp.example.flow: must be one of device, browser, app",
        ),
    ],
)
def test_wrong_types_are_named(old: str, new: str, problem: str) -> None:
    assert old in GOLDEN
    assert problems_of(GOLDEN.replace(old, new, 1)) == [problem]


def test_a_nested_table_is_an_unknown_key() -> None:
    problems = problems_of(GOLDEN.replace("[pop.fax]", "[pop.fax.sub]"))
    assert "pop.fax.sub: unknown key" in problems
    assert "pop.fax.server: required" in problems


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("providers = 1\n", "providers: must be a table"),
        ("smtp = 1\n", "smtp: must be a table"),
        ("pop = { fax = 1 }\n", "pop.fax: must be a table"),
    ],
)
def test_tables_must_be_tables(text: str, problem: str) -> None:
    assert problems_of(text) == [problem]


def test_a_syntax_error_names_the_line() -> None:
    assert problems_of("[smtp]\nport = \n") == ["toml: Invalid value (at line 2, column 8)"]


def test_a_syntax_error_never_quotes_the_text() -> None:
    problems = problems_of('[smtp]\npassword = "hunter\x012"\n')
    assert problems == ["toml: Invalid TOML (at line 2, column 19)"]


def test_rule_problems_carry_the_path_and_are_all_reported() -> None:
    text = (
        GOLDEN.replace('client_id = "tokenpost"', 'client_id = ""')
        .replace("port = 587", "port = 0")
        .replace("check_interval = 300", "check_interval = 30")
    )
    assert problems_of(text) == [
        "providers.idp.example.client_id: required; no spaces or control characters",
        "smtp.port: must be an integer from 1 to 65535",
        "pop.fax.check_interval: must be an integer from 60 to 86400 seconds",
    ]


def test_a_type_problem_does_not_hide_the_other_items() -> None:
    text = GOLDEN.replace("port = 587", 'port = "x"').replace("port = 995", "port = 0")
    assert problems_of(text) == [
        "smtp.port: must be an integer",
        "pop.fax.port: must be an integer from 1 to 65535",
    ]


def test_providers_come_from_the_document_or_the_caller() -> None:
    smtp_only = GOLDEN[GOLDEN.index("[smtp]") :]
    assert problems_of(smtp_only) == ["smtp.provider: unknown provider 'm365'"]
    assert parse_toml(smtp_only, known_providers={"m365": M365}).smtp == SMTP
    broken_provider = GOLDEN.replace('preset = "microsoft"', 'preset = "azure"')
    assert problems_of(broken_provider) == [
        "providers.m365.preset: must be one of microsoft, google, generic"
    ]


def test_the_error_names_the_file() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_toml("smtpp = 1\n")
    assert str(caught.value) == "settings file: smtpp: unknown key"


def test_a_mistyped_secret_is_not_quoted() -> None:
    text = GOLDEN.replace('account = "fax@example.com"', 'password = ["hunter2"]\naccount = "f"')
    problems = problems_of(text)
    assert problems == ["pop.fax.password: must be a string"]


def test_parse_excuses_missing_secrets_until_merged() -> None:
    imported = parse_toml(GOLDEN)
    assert imported.pop[0].password is None
    assert imported.providers[0].client_secret is None
    with pytest.raises(ValidationError, match=r"pop\.fax\.password: required with auth password"):
        validate_document(imported)
    validate_document(merge_secrets(imported, DOC))


# -- merge_secrets --------------------------------------------------------------------------------


def test_merge_keeps_secrets_that_still_go_where_they_went() -> None:
    merged = merge_secrets(parse_toml(GOLDEN), DOC)
    assert merged == DOC


@pytest.mark.parametrize(
    "edit",
    [
        {"server": "evil.example.net"},
        {"account": "other@example.com"},
        {"auth": AuthMethod.OAUTH2, "provider": "m365"},
    ],
)
def test_merge_drops_a_password_that_would_go_elsewhere(edit: dict[str, object]) -> None:
    new = ConfigDocument(pop=(replace(FAX, password=None, **edit),))  # type: ignore[arg-type]
    assert merge_secrets(new, DOC).pop[0].password is None


@pytest.mark.parametrize(
    "edit",
    [
        {"client_id": "another-app"},
        {"issuer": "https://evil.example.net"},
        {"token_endpoint": "https://evil.example.net/token"},
        {"revocation_endpoint": "https://evil.example.net/revoke"},
        {"device_authorization_endpoint": "https://evil.example.net/device"},
        {"preset": Preset.GOOGLE, "issuer": None},
    ],
)
def test_merge_drops_a_client_secret_that_would_go_elsewhere(edit: dict[str, object]) -> None:
    new = ConfigDocument(providers=(replace(IDP, client_secret=None, **edit),))  # type: ignore[arg-type]
    assert merge_secrets(new, DOC).providers[0].client_secret is None


def test_merge_never_overrides_a_secret_in_the_new_document() -> None:
    new = ConfigDocument(providers=(replace(IDP, client_secret=Secret("new")),), pop=(FAX,))
    merged = merge_secrets(
        new, ConfigDocument(providers=(IDP,), pop=(replace(FAX, password=Secret("old")),))
    )
    assert merged.providers[0].client_secret == Secret("new")
    assert merged.pop[0].password == Secret("pop-s3cret")


def test_merge_with_nothing_stored_changes_nothing() -> None:
    imported = parse_toml(GOLDEN)
    assert merge_secrets(imported, ConfigDocument()) == imported


def test_the_comments_are_written_in_the_readers_language() -> None:
    from tokenpost.i18n import translator

    german = export_toml(DOC, gettext=translator("de").gettext)
    comments = [line for line in german.splitlines() if line.startswith("#")]
    assert comments[0] == (
        "# tokenpost-Einstellungen: Anbieter, die SMTP-Einstellung, die POP-Einstellungen und "
        "Warnungen."
    )
    assert all(line.isascii() or line.startswith("#") for line in german.splitlines()[3:])
    # Only the comments differ: the German file reads back as the same document.
    assert parse_toml(german) == parse_toml(export_toml(DOC))
    warning = export_toml(DOC, include_secrets=True, gettext=translator("de").gettext)
    assert warning.splitlines()[2].startswith("# WARNUNG: diese Datei enthält Geheimnisse")


def test_problems_read_in_german() -> None:
    from tokenpost.i18n import translator

    text = GOLDEN.replace("port = 587", "port = 0").replace("[pop.fax]", "[pop.fax]\ncolour = 1")
    with pytest.raises(ValidationError) as caught:
        parse_toml(text)
    german = [p.translate(translator("de").gettext) for p in caught.value.problems]
    assert german == [
        "pop.fax.colour: unbekannter Schlüssel",
        "smtp.port: muss eine ganze Zahl von 1 bis 65535 sein",
    ]
    assert caught.value.translate(translator("de").gettext).startswith("Einstellungsdatei: ")
