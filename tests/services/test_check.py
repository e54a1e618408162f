"""The connection test through the service, with fake SMTP/POP3 sessions (our own ports): each
failure stops at the right step with the right advice; the mechanism choice it shares with
sending and receiving."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest
from service_world import TOKEN_URL, World, smtp_setting

from fakes import json_response
from tokenpost.errors import (
    MailAuthError,
    MailPolicyError,
    RemoteProtocolError,
    TlsVerifyError,
    TokenpostError,
    TransportError,
)
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.oauth.rfc8628 import DevicePending
from tokenpost.ports import StepCallback, no_steps
from tokenpost.sasl import SaslClient
from tokenpost.secret import Secret
from tokenpost.services.check import Checker, CheckReport, Step
from tokenpost.services.mailauth import choose_smtp_mechanism
from tokenpost.services.targets import load_target
from tokenpost.settings.model import (
    AuthMethod,
    PopSetting,
    Preset,
    Security,
    SmtpSetting,
)
from tokenpost.tokens.state import Acquired, Invalid, TokenState, WaitingForAuthorization

POLICY_FIX = (
    "SMTP AUTH is disabled for the tenant: "
    "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"
)
_BEARER = re.compile(r"auth=Bearer ([^\x01]+)\x01")


def presented_token(client: SaslClient) -> str:
    """The token (XOAUTH2, OAUTHBEARER) or password (PLAIN) in the client's first message."""
    first = client.initial_response()
    assert first is not None
    message = base64.b64decode(first.reveal()).decode()
    if client.mechanism == "PLAIN":
        return message.split("\0")[2]
    match = _BEARER.search(message)
    assert match is not None
    return match.group(1)


@dataclass
class FakeMailServer:
    """What the fake sessions answer: the tokens it accepts, or one fixed refusal."""

    accepted: set[str] = field(default_factory=lambda: {"s3cr3t-at-0"})
    refusal: MailAuthError | None = None
    presented: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, credential)
    closed: int = 0
    quit_error: TokenpostError | None = None
    quits: int = 0

    def authenticate(self, mechanism: str, credential: str) -> None:
        self.presented.append((mechanism, credential))
        if self.refusal is not None:
            raise self.refusal
        if credential not in self.accepted:
            raise MailAuthError("535 5.7.3 Authentication unsuccessful", reply="535 5.7.3")


@dataclass
class FakeSmtpSession:
    server: FakeMailServer
    auth_mechanisms: frozenset[str]

    async def authenticate(self, client: SaslClient) -> None:
        await asyncio.sleep(0)
        self.server.authenticate(client.mechanism, presented_token(client))

    async def send(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the connection test sends no mail")

    async def close(self) -> None:
        self.server.closed += 1


@dataclass
class FakeSmtpConnector:
    """Reports `steps`, then raises `error` or returns a session."""

    server: FakeMailServer
    steps: tuple[str, ...] = ("connect", "greeting", "ehlo", "starttls", "ehlo")
    error: TokenpostError | None = None
    offered: frozenset[str] = frozenset({"XOAUTH2", "LOGIN"})
    connects: int = 0

    async def connect(
        self, setting: SmtpSetting, *, on_step: StepCallback = no_steps
    ) -> FakeSmtpSession:
        self.connects += 1
        for step in self.steps:
            await asyncio.sleep(0)
            on_step(step)
        if self.error is not None:
            raise self.error
        return FakeSmtpSession(self.server, self.offered)


@dataclass
class FakePop3Session:
    """Reports "auth" and "quit" through the connector's step callback, as the driver does."""

    server: FakeMailServer
    capabilities: frozenset[str]
    on_step: StepCallback = no_steps
    apop_timestamp: str | None = None

    async def authenticate(self, client: SaslClient) -> None:
        self.server.authenticate(client.mechanism, presented_token(client))
        self.on_step("auth")

    async def login(self, user: str, password: Secret) -> None:
        self.server.authenticate("USER", password.reveal())

    async def apop(self, user: str, password: Secret) -> None:
        self.server.authenticate("APOP", password.reveal())

    async def uidl(self) -> dict[int, str]:
        raise AssertionError("the connection test lists no messages")

    async def retrieve(self, number: int, sink: Callable[[bytes], None]) -> int:
        raise AssertionError("the connection test retrieves nothing")

    async def delete(self, number: int) -> None:
        raise AssertionError("the connection test deletes nothing")

    async def quit(self) -> None:
        self.server.quits += 1
        if self.server.quit_error is not None:
            raise self.server.quit_error
        self.on_step("quit")

    async def close(self) -> None:
        self.server.closed += 1


@dataclass
class FakePop3Connector:
    server: FakeMailServer
    steps: tuple[str, ...] = ("connect", "tls", "greeting", "capa")
    error: TokenpostError | None = None
    capabilities: frozenset[str] = frozenset({"UIDL", "SASL XOAUTH2"})

    async def connect(
        self,
        setting: PopSetting,
        *,
        timeout: float = 60.0,
        on_step: StepCallback = no_steps,
    ) -> FakePop3Session:
        for step in self.steps:
            on_step(step)
        if self.error is not None:
            raise self.error
        return FakePop3Session(self.server, self.capabilities, on_step)


class CheckWorld:
    def __init__(self, world: World) -> None:
        self.world = world
        self.server = FakeMailServer()
        self.smtp = FakeSmtpConnector(self.server)
        self.pop = FakePop3Connector(self.server)
        self.checker = Checker(world.store, world.refresher, world.clock, self.smtp, self.pop)
        self.seen: list[Step] = []

    async def check(self, setting_id: str = "smtp", **kwargs: bool) -> CheckReport:
        return await self.checker.check(setting_id, on_step=self.seen.append, **kwargs)

    async def set_state(self, state: TokenState, setting_id: str = "smtp") -> None:
        target = await load_target(self.world.store, setting_id)
        record = await self.world.store.load_token(setting_id)
        await self.world.store.save_token(
            setting_id, state, binding=target.binding, expected_version=record.version
        )

    async def seed(
        self, setting_id: str = "smtp", *, age: float = 3000, expires_in: float = 3000
    ) -> None:
        now = self.world.clock.now()
        await self.set_state(
            Acquired(
                access_token=Secret("s3cr3t-at-0"),
                expires_at=now + expires_in,
                obtained_at=now - age,
                refresh_token=Secret("s3cr3t-rt-0"),
            ),
            setting_id,
        )

    def grant_new_tokens(self) -> None:
        def respond(request: HttpRequest) -> HttpResponse:
            return json_response(
                200, {"access_token": "s3cr3t-at-1", "token_type": "Bearer", "expires_in": 3600}
            )

        self.world.http.routes[TOKEN_URL] = respond


@pytest.fixture
async def cw(world: World) -> CheckWorld:
    return CheckWorld(world)


def step_ids(report: CheckReport) -> list[str]:
    return [step.step for step in report.steps]


def failed(report: CheckReport) -> Step:
    [step] = [s for s in report.steps if not s.ok]
    assert report.steps[-1] is step  # the test stops at the first failure
    return step


def pop_setting(**overrides: object) -> PopSetting:
    base: dict[str, object] = {
        "name": "fax",
        "server": "pop.example",
        "port": 995,
        "security": Security.TLS,
        "check_interval": 300,
        "auth": AuthMethod.OAUTH2,
        "deliver_to": "/var/spool/fax",
        "provider": "as",
        "account": "fax@example.com",
    }
    base.update(overrides)
    return PopSetting(**base)  # type: ignore[arg-type]


# -- success ------------------------------------------------------------------------------------


async def test_smtp_starttls_every_step_in_order(cw: CheckWorld) -> None:
    await cw.seed()
    report = await cw.check()
    assert report.ok
    assert report.exit_code == 0
    assert report.fix is None
    assert step_ids(report) == [
        "settings", "encryption", "connect", "greeting", "ehlo", "tls", "ehlo", "token", "auth",
        "quit",
    ]  # fmt: skip
    assert all(step.ok for step in report.steps)
    assert cw.seen == list(report.steps)  # reported as they happened
    assert cw.server.presented == [("XOAUTH2", "s3cr3t-at-0")]
    assert cw.server.closed == 1
    details = {s.step: s.detail for s in report.steps}
    assert details["connect"] == "smtp.example:587"
    assert details["tls"] == "STARTTLS, trusted: the system trust store"
    assert details["token"].startswith("valid until ")
    assert details["auth"] == "XOAUTH2 (LOGIN XOAUTH2)"


async def test_implicit_tls_order_and_steps_the_connector_did_not_report(cw: CheckWorld) -> None:
    await cw.world.store.put_smtp(smtp_setting(security=Security.TLS, port=465))
    await cw.seed()
    cw.smtp.steps = ("ehlo",)  # a connector that reports little: the rest passed before it
    report = await cw.check()
    assert report.ok
    assert step_ids(report)[2:] == ["connect", "tls", "greeting", "ehlo", "token", "auth", "quit"]
    assert {s.step: s.detail for s in report.steps}["tls"] == "TLS, trusted: the system trust store"


@pytest.mark.parametrize(
    ("own", "home", "english", "german"),
    [
        (None, None, "the system trust store", "der Zertifikatsspeicher des Systems"),
        (
            "/etc/own.pem",
            "/etc/home.pem",
            "the CA file /etc/own.pem (--ca-file)",
            "die CA-Datei /etc/own.pem (--ca-file)",
        ),
        (
            None,
            "/etc/home.pem",
            "the CA file /etc/home.pem (TOKENPOST_CA_FILE)",
            "die CA-Datei /etc/home.pem (TOKENPOST_CA_FILE)",
        ),
    ],
)
async def test_the_tls_step_says_what_was_trusted(
    cw: CheckWorld, own: str | None, home: str | None, english: str, german: str
) -> None:
    await cw.world.store.put_pop(pop_setting(ca_file=own))
    await cw.seed("pop:fax")
    for lang, expected in (
        ("en", f"TLS, trusted: {english}"),
        ("de", f"TLS, Vertrauensbasis: {german}"),
    ):
        checker = dataclasses.replace(cw.checker, home_ca_file=home, lang=lang)
        report = await checker.check("pop:fax")
        assert report.ok
        assert {s.step: s.detail for s in report.steps}["tls"] == expected


async def test_oauthbearer_when_offered_and_the_provider_is_not_microsoft(cw: CheckWorld) -> None:
    await cw.seed()
    cw.smtp.offered = frozenset({"XOAUTH2", "OAUTHBEARER", "PLAIN"})
    assert (await cw.check()).ok
    assert cw.server.presented == [("OAUTHBEARER", "s3cr3t-at-0")]


async def test_a_due_token_is_refreshed_first(cw: CheckWorld) -> None:
    await cw.seed(expires_in=100)
    cw.grant_new_tokens()
    cw.server.accepted = {"s3cr3t-at-1"}
    report = await cw.check()
    assert report.ok
    assert {s.step: s.detail for s in report.steps}["token"].startswith("refreshed, valid until")
    assert cw.world.http.count(TOKEN_URL) == 1
    assert cw.server.presented == [("XOAUTH2", "s3cr3t-at-1")]


async def test_a_stale_token_refused_is_refreshed_once_and_tried_again(cw: CheckWorld) -> None:
    await cw.seed(age=3000)
    cw.grant_new_tokens()
    cw.server.accepted = {"s3cr3t-at-1"}
    report = await cw.check()
    assert report.ok
    assert [token for _, token in cw.server.presented] == ["s3cr3t-at-0", "s3cr3t-at-1"]


async def test_pop_tls_xoauth2(cw: CheckWorld) -> None:
    await cw.world.store.put_pop(pop_setting())
    await cw.seed("pop:fax")
    report = await cw.check("pop:fax")
    assert report.ok, report
    assert step_ids(report) == [
        "settings", "encryption", "connect", "tls", "greeting", "capa", "token", "auth", "quit",
    ]  # fmt: skip
    assert cw.server.presented == [("XOAUTH2", "s3cr3t-at-0")]
    assert (cw.server.quits, cw.server.closed) == (1, 1)


async def test_smtp_password_uses_plain_and_has_no_token_step(cw: CheckWorld) -> None:
    await cw.world.store.put_smtp(
        smtp_setting(auth=AuthMethod.PASSWORD, provider=None, password=Secret("s3cr3t-pw"))
    )
    cw.smtp.offered = frozenset({"PLAIN", "LOGIN"})
    cw.server.accepted = {"s3cr3t-pw"}
    report = await cw.check()
    assert report.ok, report
    assert "token" not in step_ids(report)
    assert cw.server.presented == [("PLAIN", "s3cr3t-pw")]


async def test_pop_password_uses_user_pass_and_has_no_token_step(cw: CheckWorld) -> None:
    await cw.world.store.put_pop(
        pop_setting(auth=AuthMethod.PASSWORD, provider=None, password=Secret("s3cr3t-pw"))
    )
    cw.server.accepted = {"s3cr3t-pw"}
    cw.pop.capabilities = frozenset({"USER", "UIDL"})
    report = await cw.check("pop:fax")
    assert report.ok
    assert "token" not in step_ids(report)
    assert cw.server.presented == [("USER", "s3cr3t-pw")]


# -- failures: the step and the advice ----------------------------------------------------------


async def test_unreachable_server_fails_at_connect(cw: CheckWorld) -> None:
    cw.smtp.steps = ()
    cw.smtp.error = TransportError("smtp.example:587: connection refused")
    report = await cw.check()
    assert (failed(report).step, report.exit_code) == ("connect", 1)
    assert "connection refused" in failed(report).detail
    assert report.fix is not None
    assert "firewall" in report.fix
    assert "port" in report.fix


async def test_certificate_that_does_not_verify_fails_at_tls(cw: CheckWorld) -> None:
    cw.smtp.steps = ("connect", "greeting", "ehlo")
    cw.smtp.error = TlsVerifyError("smtp.example: certificate verify failed")
    report = await cw.check()
    assert failed(report).step == "tls"
    assert report.fix is not None
    assert "--ca-file" in report.fix
    assert report.exit_code == 1


async def test_no_starttls_offered_fails_at_tls_with_port_advice(cw: CheckWorld) -> None:
    cw.smtp.steps = ("connect", "greeting", "ehlo")
    cw.smtp.error = RemoteProtocolError("smtp.example does not offer STARTTLS")
    report = await cw.check()
    assert failed(report).step == "tls"
    assert report.fix is not None
    assert "security" in report.fix


async def test_greeting_that_never_comes(cw: CheckWorld) -> None:
    cw.smtp.steps = ("connect",)
    cw.smtp.error = TransportError("smtp.example:587: timed out")
    report = await cw.check()
    assert failed(report).step == "greeting"


@pytest.mark.parametrize(
    ("state", "fix"),
    [
        (None, "Obtain the token: tokenpost token get smtp"),
        (
            Invalid("invalid_grant: consent revoked", since=1.0),
            "Token update failed: delete the token and obtain it again "
            "(tokenpost token delete smtp, then tokenpost token get smtp)",
        ),
        (
            WaitingForAuthorization(
                DevicePending(
                    device_code=Secret("s3cr3t-dc"),
                    user_code="ABCD-EFGH",
                    verification_uri="https://as.example/activate",
                    expires_at=2e9,
                    interval=5.0,
                    next_poll_at=1.0,
                ),
                started_at=1.0,
            ),
            "Finish the authorization that was started, or start it again: "
            "tokenpost token get smtp",
        ),
    ],
    ids=["not-acquired", "invalid", "waiting"],
)
async def test_token_not_usable_fails_at_token_before_any_auth(
    cw: CheckWorld, state: TokenState | None, fix: str
) -> None:
    if state is not None:
        await cw.set_state(state)
    report = await cw.check()
    assert failed(report).step == "token"
    assert report.fix == fix
    assert report.exit_code == 1
    assert cw.server.presented == []
    assert cw.server.closed == 1  # the connection is closed all the same


async def test_a_revoked_grant_found_at_refresh_fails_at_token(cw: CheckWorld) -> None:
    await cw.seed(expires_in=100)
    cw.world.http.routes[TOKEN_URL] = lambda r: json_response(400, {"error": "invalid_grant"})
    report = await cw.check()
    assert failed(report).step == "token"
    assert report.fix is not None
    assert report.fix.startswith("Token update failed")
    record = await cw.world.store.load_token("smtp")
    assert isinstance(record.state, Invalid)


async def test_policy_refusal_shows_its_fix_verbatim_and_keeps_the_token(cw: CheckWorld) -> None:
    await cw.seed(age=3000)
    cw.server.refusal = MailPolicyError(
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
        "Tenant.",
        fix=POLICY_FIX,
        reply="535 5.7.139",
    )
    report = await cw.check()
    assert failed(report).step == "auth"
    assert "5.7.139" in failed(report).detail
    assert report.fix == POLICY_FIX
    assert cw.world.http.count(TOKEN_URL) == 0  # no refresh: no token cures a policy
    assert isinstance((await cw.world.store.load_token("smtp")).state, Acquired)


async def test_a_fresh_token_refused_points_at_the_account(cw: CheckWorld) -> None:
    await cw.seed(age=5)
    cw.server.accepted = set()
    report = await cw.check()
    assert failed(report).step == "auth"
    assert report.fix is not None
    assert "SMTP AUTH is enabled" in report.fix
    assert "scanner@example.com" in report.fix
    assert cw.world.http.count(TOKEN_URL) == 0


async def test_pop_refusal_of_a_fresh_token_names_pop(cw: CheckWorld) -> None:
    await cw.world.store.put_pop(pop_setting())
    await cw.seed("pop:fax", age=5)
    cw.server.accepted = set()
    report = await cw.check("pop:fax")
    assert failed(report).step == "auth"
    assert report.fix is not None
    assert "POP is enabled" in report.fix
    assert cw.server.quits == 0
    assert cw.server.closed == 1


async def test_no_usable_mechanism_fails_at_auth(cw: CheckWorld) -> None:
    await cw.seed()
    cw.smtp.offered = frozenset({"PLAIN", "LOGIN"})
    report = await cw.check()
    assert failed(report).step == "auth"
    assert "PLAIN" in failed(report).detail
    assert report.fix is not None
    assert "STARTTLS" in report.fix


async def test_pop_quit_refused(cw: CheckWorld) -> None:
    await cw.world.store.put_pop(pop_setting())
    await cw.seed("pop:fax")
    cw.server.quit_error = RemoteProtocolError("QUIT: -ERR mailbox locked")
    report = await cw.check("pop:fax")
    assert failed(report).step == "quit"
    assert report.exit_code == 1


# -- settings and the encryption rule: exit 2 --------------------------------------------------


async def test_a_setting_that_does_not_exist(cw: CheckWorld) -> None:
    report = await cw.check("pop:nope")
    assert step_ids(report) == ["settings"]
    assert report.exit_code == 2
    assert report.fix == "Add the POP setting: tokenpost pop add nope …"
    assert cw.smtp.connects == 0


async def test_an_incomplete_setting(cw: CheckWorld) -> None:
    await cw.world.store.put_smtp(smtp_setting(provider="gone"))
    report = await cw.check()
    assert failed(report).step == "settings"
    assert "provider" in failed(report).detail
    assert report.exit_code == 2
    assert cw.smtp.connects == 0


async def test_plaintext_is_refused_before_connecting(cw: CheckWorld) -> None:
    await cw.world.store.put_smtp(smtp_setting(security=Security.NONE, port=25))
    report = await cw.check()
    step = failed(report)
    assert step.step == "encryption"
    assert report.fix == step.detail  # PlaintextRefusedError says what to do itself
    assert "--allow-plaintext" in step.detail
    assert report.exit_code == 2
    assert cw.smtp.connects == 0


async def test_plaintext_on_loopback_with_allow_plaintext(cw: CheckWorld) -> None:
    await cw.world.store.put_smtp(smtp_setting(security=Security.NONE, server="127.0.0.1", port=25))
    await cw.seed()
    cw.smtp.steps = ("connect", "greeting", "ehlo")
    refused = await cw.check()
    assert failed(refused).step == "encryption"
    report = await cw.check(allow_plaintext=True)
    assert report.ok
    assert "tls" not in step_ids(report)


# -- language and secrets ------------------------------------------------------------------------


async def test_advice_in_german(cw: CheckWorld) -> None:
    cw.checker.lang = "de"
    report = await cw.check()
    assert report.fix == "Token abrufen: tokenpost token get smtp"
    assert failed(report).detail == "es wurde kein Token abgerufen"  # the step's detail too


async def test_no_secret_in_any_report(cw: CheckWorld) -> None:
    await cw.seed(age=5)
    await cw.world.store.put_pop(
        pop_setting(auth=AuthMethod.PASSWORD, provider=None, password=Secret("s3cr3t-pw"))
    )
    cw.server.accepted = set()
    reports = [await cw.check(), await cw.check("pop:fax")]
    cw.server.refusal = MailPolicyError("535 5.7.139 refused", fix=POLICY_FIX)
    reports.append(await cw.check())
    for report in reports:
        assert not report.ok
        assert "s3cr3t" not in repr(report)


# -- the SMTP mechanism choice shared with sending -----------------------------------------------


@pytest.mark.parametrize(
    ("auth", "offered", "preset", "expected"),
    [
        (AuthMethod.OAUTH2, {"XOAUTH2", "OAUTHBEARER"}, Preset.GENERIC, "OAUTHBEARER"),
        (AuthMethod.OAUTH2, {"XOAUTH2", "OAUTHBEARER"}, Preset.MICROSOFT, "XOAUTH2"),
        (AuthMethod.OAUTH2, {"LOGIN", "XOAUTH2"}, Preset.GOOGLE, "XOAUTH2"),
        (AuthMethod.OAUTH2, {"OAUTHBEARER"}, Preset.MICROSOFT, "OAUTHBEARER"),
        (AuthMethod.OAUTH2, {"xoauth2"}, None, "XOAUTH2"),
        (AuthMethod.PASSWORD, {"LOGIN", "PLAIN"}, None, "PLAIN"),
        (AuthMethod.PASSWORD, {"LOGIN", "XOAUTH2"}, None, "LOGIN"),
        (AuthMethod.NONE, set(), None, None),
    ],
)
def test_choose_smtp_mechanism(
    auth: AuthMethod, offered: Iterable[str], preset: Preset | None, expected: str | None
) -> None:
    assert choose_smtp_mechanism(auth, offered, preset=preset) == expected


def test_choose_smtp_mechanism_says_what_the_server_offers() -> None:
    with pytest.raises(MailAuthError) as caught:
        choose_smtp_mechanism(AuthMethod.OAUTH2, {"PLAIN", "LOGIN"})
    assert "LOGIN PLAIN" in str(caught.value)
    with pytest.raises(MailAuthError):
        choose_smtp_mechanism(AuthMethod.PASSWORD, {"XOAUTH2"})
