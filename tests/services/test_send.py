"""The send service: with the whole stack against the sandbox (authorization server, SMTP server,
SQLite store, aiosmtplib), and with a fake SMTP connector (our port) for connection reuse."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest
from service_world import TOKEN_URL, World

from fakes import json_response
from sandbox_support import DEFAULT_USER, Sandbox
from smtpserver_support import SmtpSandbox
from tokenpost.adapters.outgoing_files import open_attachment
from tokenpost.clock import SystemClock
from tokenpost.errors import (
    MailAuthError,
    MailPolicyError,
    MailRejectedError,
    PlaintextRefusedError,
    TlsVerifyError,
    TransportError,
    UsageError,
)
from tokenpost.mime import Attachment, Draft
from tokenpost.ports import Envelope, StepCallback, no_steps
from tokenpost.sasl import SaslClient
from tokenpost.secret import Secret
from tokenpost.services.authorize import DevicePrompt, Prompt
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.services.send import Sender
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, Flow, Preset, Provider, Security, SmtpSetting
from tokenpost.tokens.state import Acquired, Invalid
from tokenpost.wiring import App, open_app

TO = "bob@example.test"
DRAFT = Draft(to=(TO,), subject="Scan", body="Attached.")


class SteppingClock(SystemClock):
    """Real time plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset


@dataclass
class Stack:
    app: App
    clock: SteppingClock
    sandbox: Sandbox
    peer: SmtpSandbox

    @property
    def sender(self) -> Sender:
        return self.app.sender()

    async def state(self) -> object:
        return (await self.app.store.load_token("smtp")).state

    async def access_token(self) -> str:
        state = await self.state()
        assert isinstance(state, Acquired)
        return state.access_token.reveal()

    def refreshes(self) -> int:
        return self.sandbox.control.stats().grants_by_type.get("refresh_token", 0)


def sandbox_smtp_setting(peer: SmtpSandbox, security: Security = Security.STARTTLS) -> SmtpSetting:
    port = peer.ready.tls_port if security is Security.TLS else peer.ready.starttls_port
    return SmtpSetting(
        peer.host, port, security, 10, "Scanner", "scanner@example.test", AuthMethod.OAUTH2,
        provider="sbx", account=DEFAULT_USER, ca_file=str(peer.ready.ca_file),
    )  # fmt: skip


@asynccontextmanager
async def open_stack(
    home: Path, sandbox: Sandbox, peer: SmtpSandbox, setting: SmtpSetting, preset: Preset
) -> AsyncIterator[Stack]:
    """A real app (SQLite store, httpx, aiosmtplib) with the sandbox provider and a token."""
    clock = SteppingClock()
    sandbox.control.config(device_interval=0)
    async with open_app(home, {}, clock=clock) as app:
        provider = Provider(
            "sbx", preset, sandbox.clients.public, flow=Flow.DEVICE,
            scope=("mail.send", "offline_access"), ca_file=str(sandbox.ca_file),
        )  # fmt: skip
        if preset is Preset.MICROSOFT:  # the preset's endpoints, pointed at the sandbox
            provider = replace(
                provider,
                tenant="organizations",
                token_endpoint=sandbox.issuer + "/token",
                device_authorization_endpoint=sandbox.issuer + "/device",
            )
        else:
            provider = replace(provider, issuer=sandbox.issuer)
        await app.settings.put_provider(provider)
        await app.settings.put_smtp(setting)

        async def approve(prompt: Prompt) -> None:
            assert isinstance(prompt, DevicePrompt)
            await asyncio.to_thread(sandbox.control.approve, prompt.user_code, user=DEFAULT_USER)

        await app.authorizer.obtain("smtp", approve)
        yield Stack(app, clock, sandbox, peer)


@pytest.fixture
async def stack(tmp_path: Path, sandbox: Sandbox, smtp_peer: SmtpSandbox) -> AsyncIterator[Stack]:
    setting = sandbox_smtp_setting(smtp_peer)
    async with open_stack(tmp_path / "home", sandbox, smtp_peer, setting, Preset.GENERIC) as built:
        yield built


# --- the whole stack ----------------------------------------------------------------------------


async def test_a_burst_goes_over_one_connection_with_oauthbearer(stack: Stack) -> None:
    before = stack.peer.stats()["connections"]
    async with stack.sender.session() as outbox:
        ids = [await outbox.send(replace(DRAFT, subject=f"Scan {n}")) for n in range(5)]
    assert stack.peer.stats()["connections"] - before == 1
    messages = stack.peer.messages()
    assert [m.envelope["mechanism"] for m in messages] == ["OAUTHBEARER"] * 5
    assert [m.envelope["rcpt_tos"] for m in messages] == [[TO]] * 5
    assert all(m.envelope["mail_from"] == "scanner@example.test" for m in messages)
    assert all(f"Message-ID: {i}".encode() in m.content for i, m in zip(ids, messages, strict=True))
    assert all(b"From: Scanner <scanner@example.test>" in m.content for m in messages)


async def test_microsoft_gets_xoauth2(stack: Stack) -> None:
    stack.peer.set_knobs(style="microsoft")  # offers LOGIN and XOAUTH2 only
    await stack.sender.send(DRAFT)
    assert [m.envelope["mechanism"] for m in stack.peer.messages()] == ["XOAUTH2"]


async def test_the_microsoft_preset_prefers_xoauth2_where_both_are_offered(
    tmp_path: Path, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    setting = sandbox_smtp_setting(smtp_peer)
    async with open_stack(tmp_path / "h", sandbox, smtp_peer, setting, Preset.MICROSOFT) as built:
        await built.sender.send(DRAFT)
    assert [m.envelope["mechanism"] for m in smtp_peer.messages()] == ["XOAUTH2"]


async def test_implicit_tls(tmp_path: Path, sandbox: Sandbox, smtp_peer: SmtpSandbox) -> None:
    setting = sandbox_smtp_setting(smtp_peer, Security.TLS)
    async with open_stack(tmp_path / "h", sandbox, smtp_peer, setting, Preset.GENERIC) as built:
        await built.sender.send(DRAFT)
    assert [m.envelope["listener"] for m in smtp_peer.messages()] == ["tls"]


async def test_attachments_arrive_whole(stack: Stack, tmp_path: Path) -> None:
    scan = tmp_path / "scan 1.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 3000)
    draft = replace(DRAFT, attachments=(open_attachment(scan),))
    await stack.sender.send(draft)
    import email

    (message,) = stack.peer.messages()
    parts = [p for p in email.message_from_bytes(message.content).walk() if p.get_filename()]
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in parts] == [
        ("scan 1.pdf", scan.read_bytes())
    ]


async def test_a_message_over_the_size_limit_is_refused_and_the_burst_goes_on(
    stack: Stack, tmp_path: Path
) -> None:
    stack.peer.set_knobs(size_limit=100_000)
    big = tmp_path / "big.tif"
    big.write_bytes(b"II*\x00" * 30_000)  # 120 kB, 160 kB in base64
    before = stack.peer.stats()["connections"]
    async with stack.sender.session() as outbox:
        await outbox.send(replace(DRAFT, subject="first"))
        with pytest.raises(MailRejectedError, match=r"\(100000 bytes\)") as caught:
            await outbox.send(replace(DRAFT, attachments=(open_attachment(big),)))
        await outbox.send(replace(DRAFT, subject="third"))
    assert caught.value.transient is False
    assert stack.peer.stats()["connections"] - before == 1  # not taken for a dropped connection
    assert stack.peer.stats()["mail_commands"] == 2  # the large one was never offered
    messages = stack.peer.messages()
    assert [m.envelope["mail_options"] for m in messages] == [
        [f"SIZE={len(m.content)}"] for m in messages
    ]


async def test_a_stale_refused_token_is_refreshed_once_and_sending_goes_on(stack: Stack) -> None:
    old = await stack.access_token()
    revoke_access_token(stack.sandbox, old)  # the grant lives on: only this token is dead
    stack.clock.offset = 120  # older than a minute, far from its expiry
    await stack.sender.send(DRAFT)
    assert stack.refreshes() == 1
    assert await stack.access_token() != old
    assert stack.peer.auth_count("OAUTHBEARER", "failure") == 1
    assert stack.peer.auth_count("OAUTHBEARER", "success") == 1
    assert len(stack.peer.messages()) == 1


def revoke_access_token(sandbox: Sandbox, token: str) -> None:
    context = ssl.create_default_context(cafile=str(sandbox.ca_file))
    with httpx.Client(verify=context) as http:
        form = {
            "token": token,
            "token_type_hint": "access_token",
            "client_id": sandbox.clients.public,
        }
        http.post(sandbox.issuer + "/revoke", data=form).raise_for_status()


async def test_a_fresh_refused_token_is_not_refreshed(stack: Stack) -> None:
    revoke_access_token(stack.sandbox, await stack.access_token())
    with pytest.raises(MailAuthError) as caught:
        await stack.sender.send(DRAFT)
    assert caught.value.status == "invalid_token"
    assert stack.refreshes() == 0
    assert isinstance(await stack.state(), Acquired)


async def test_a_revoked_grant_makes_the_token_invalid_after_one_refresh(stack: Stack) -> None:
    stack.sandbox.control.revoke_user(DEFAULT_USER)
    stack.clock.offset = 120
    with pytest.raises(TokenUnavailableError, match=r"^smtp: ") as caught:
        await stack.sender.send(DRAFT)
    state = await stack.state()
    assert isinstance(state, Invalid)
    assert str(state.reason) in str(caught.value)
    assert stack.peer.auth_count("OAUTHBEARER", "failure") == 1  # tried once, then no more
    assert stack.peer.messages() == []


async def test_without_a_usable_token_no_connection_is_made(stack: Stack) -> None:
    await stack.app.deleter.delete("smtp")  # Not acquired
    before = stack.peer.stats()["connections"]
    with pytest.raises(TokenUnavailableError, match="token get"):
        await stack.sender.send(DRAFT)
    assert stack.peer.stats()["connections"] == before
    assert stack.peer.messages() == []


async def test_a_policy_refusal_keeps_the_token_and_says_what_to_change(stack: Stack) -> None:
    stack.peer.set_knobs(style="microsoft", policy={DEFAULT_USER: "mailbox"})
    stack.clock.offset = 120  # even a stale token is not refreshed for a policy refusal
    with pytest.raises(MailPolicyError) as caught:
        await stack.sender.send(DRAFT)
    assert "Set-CASMailbox" in str(caught.value.fix)
    assert "5.7.139" in str(caught.value)
    assert isinstance(await stack.state(), Acquired)
    assert stack.refreshes() == 0


async def test_a_certificate_from_another_ca_is_refused(
    stack: Stack, tmp_path: Path, smtp_peer: SmtpSandbox
) -> None:
    import trustme

    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    store = stack.app.store
    setting = await store.get_smtp()
    assert setting is not None
    await store.put_smtp(replace(setting, ca_file=str(other)))
    with pytest.raises(TlsVerifyError):
        await stack.sender.send(DRAFT)
    assert smtp_peer.auth_count("OAUTHBEARER", "success") == 0


async def test_refused_recipients_send_nothing(stack: Stack) -> None:
    stack.peer.set_knobs(reject_rcpt=["nobody@example.test"])
    with pytest.raises(MailRejectedError, match=r"nobody@example\.test"):
        await stack.sender.send(replace(DRAFT, cc=("nobody@example.test",)))
    assert stack.peer.messages() == []


async def test_a_drop_mid_data_is_a_transport_error_and_not_resent(
    stack: Stack, tmp_path: Path
) -> None:
    stack.peer.set_knobs(drop_after_data_bytes=50_000)
    big = tmp_path / "big.tif"
    big.write_bytes(b"II*\x00" + b"\x00" * 3_000_000)
    before = stack.peer.stats()["connections"]
    with pytest.raises(TransportError):
        await stack.sender.send(replace(DRAFT, attachments=(open_attachment(big),)))
    assert stack.peer.stats()["connections"] - before == 1
    assert stack.peer.stats()["messages_dropped"] == 1


@pytest.mark.parametrize(
    ("server", "allow", "says"),
    [
        ("smtp.example.test", True, "only for a server on loopback"),
        ("127.0.0.1", False, "pass --allow-plaintext"),
    ],
)
async def test_plaintext_is_refused_before_connecting(
    stack: Stack, server: str, allow: bool, says: str
) -> None:
    setting = await stack.app.store.get_smtp()
    assert setting is not None
    await stack.app.store.put_smtp(replace(setting, server=server, security=Security.NONE))
    before = stack.peer.stats()["connections"]
    with pytest.raises(PlaintextRefusedError, match=says):
        await stack.sender.send(DRAFT, allow_plaintext=allow)
    assert stack.peer.stats()["connections"] == before


async def test_a_bad_draft_fails_before_connecting(stack: Stack) -> None:
    before = stack.peer.stats()["connections"]
    with pytest.raises(UsageError, match=r"^cc: 'not an address'"):
        await stack.sender.send(replace(DRAFT, cc=("not an address",)))
    with pytest.raises(UsageError, match=r"^subject: must not contain a line break"):
        await stack.sender.send(replace(DRAFT, subject="a\r\nBcc: x@example.test"))
    assert stack.peer.stats()["connections"] == before


async def test_no_token_in_any_log_line(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = await stack.access_token()
    await stack.sender.send(DRAFT)
    revoke_access_token(stack.sandbox, token)
    stack.clock.offset = 120
    await stack.sender.send(DRAFT)
    fresh = await stack.access_token()
    stack.peer.set_knobs(style="microsoft", policy={DEFAULT_USER: "tenant"})
    with pytest.raises(MailPolicyError) as caught:
        await stack.sender.send(DRAFT)
    shown = caplog.text + str(caught.value) + str(caught.value.fix)
    assert "sent <" in caplog.text
    assert token not in shown
    assert fresh not in shown
    assert "sbx_at_" not in shown


# --- connection reuse, with a fake connector ----------------------------------------------------


@dataclass
class FakeSmtp:
    """Our `SmtpConnector` port over an in-memory server: records connections and messages;
    `drops` lists what to do for each next send ("idle": fail before reading the message,
    "mid": fail after its first chunk)."""

    messages: list[tuple[Envelope, bytes]] = field(default_factory=list)
    connects: int = 0
    closes: int = 0
    drops: list[str] = field(default_factory=list)
    mechanisms: frozenset[str] = frozenset({"XOAUTH2", "OAUTHBEARER"})
    tokens: list[str] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)

    async def connect(
        self, setting: SmtpSetting, *, on_step: StepCallback = no_steps
    ) -> FakeSession:
        self.connects += 1
        await asyncio.sleep(0)
        return FakeSession(self)


@dataclass
class FakeSession:
    server: FakeSmtp

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return self.server.mechanisms

    async def authenticate(self, client: SaslClient) -> None:
        line = client.initial_response()
        assert line is not None
        self.server.tokens.append(base64.b64decode(line.reveal()).decode())

    async def send(
        self,
        envelope: Envelope,
        message: Iterable[bytes],
        *,
        size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.server.sizes.append(size)
        drop = self.server.drops.pop(0) if self.server.drops else None
        if drop == "idle":
            raise TransportError("smtp.example:587 closed the connection")
        chunks = iter(message)
        first = next(chunks)
        if drop == "mid":
            raise TransportError("smtp.example:587 closed the connection")
        self.server.messages.append((envelope, first + b"".join(chunks)))

    async def close(self) -> None:
        self.server.closes += 1


@pytest.fixture
async def fake_world(world: World) -> World:
    target = await load_target(world.store, "smtp")
    now = world.clock.now()
    state = Acquired(
        Secret("at-1"), expires_at=now + 3600, obtained_at=now, refresh_token=Secret("rt-1")
    )
    await world.store.save_token("smtp", state, binding=target.binding, expected_version=0)
    world.http.routes[TOKEN_URL] = lambda request: json_response(
        200, {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600}
    )
    return world


def fake_sender(world: World, server: FakeSmtp) -> Sender:
    return Sender(world.store, world.refresher, world.clock, server)


async def test_the_connection_is_replaced_before_its_token_expires(fake_world: World) -> None:
    server = FakeSmtp()
    async with fake_sender(fake_world, server).session() as outbox:
        await outbox.send(DRAFT)
        fake_world.clock.t += 3000  # due for refresh, but the connection is still good
        await outbox.send(DRAFT)
        assert server.connects == 1
        fake_world.clock.t += 550  # 50 s left: the provider may end the session any moment
        await outbox.send(DRAFT)
    assert server.connects == 2
    assert server.closes == 2
    assert len(server.messages) == 3
    assert ["at-1" in t for t in server.tokens] == [True, False]
    assert "at-2" in server.tokens[1]


async def test_an_idle_connection_the_server_dropped_is_replaced(fake_world: World) -> None:
    server = FakeSmtp()
    async with fake_sender(fake_world, server).session() as outbox:
        await outbox.send(DRAFT)
        server.drops.append("idle")
        await outbox.send(replace(DRAFT, subject="second"))
    assert server.connects == 2
    assert [b"Subject: second" in m for _e, m in server.messages] == [False, True]


async def test_a_message_already_being_written_is_never_sent_twice(fake_world: World) -> None:
    server = FakeSmtp()
    async with fake_sender(fake_world, server).session() as outbox:
        await outbox.send(DRAFT)
        server.drops.append("mid")
        with pytest.raises(TransportError):
            await outbox.send(DRAFT)
    assert server.connects == 1
    assert len(server.messages) == 1


async def test_a_new_connection_that_fails_is_not_retried(fake_world: World) -> None:
    server = FakeSmtp(drops=["idle"])
    with pytest.raises(TransportError):
        await fake_sender(fake_world, server).send(DRAFT)
    assert server.connects == 1


async def test_no_usable_mechanism_names_what_the_server_offers(fake_world: World) -> None:
    server = FakeSmtp(mechanisms=frozenset({"LOGIN", "CRAM-MD5"}))
    with pytest.raises(MailAuthError, match="it offers: CRAM-MD5 LOGIN"):
        await fake_sender(fake_world, server).send(DRAFT)
    assert server.closes == 1


async def test_envelope_has_every_recipient_and_the_headers_no_bcc(fake_world: World) -> None:
    server = FakeSmtp()
    draft = Draft(to=("a@example.test",), cc=("b@example.test",), bcc=("c@example.test",))
    await fake_sender(fake_world, server).send(draft, on_progress=None)
    ((envelope, content),) = server.messages
    assert envelope == Envelope(
        "scanner@example.com", ("a@example.test", "b@example.test", "c@example.test")
    )
    assert b"c@example.test" not in content
    assert server.tokens  # authenticated before sending


async def test_the_transport_gets_the_exact_size_of_what_it_sends(
    fake_world: World, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(bytes(range(256)) * 999)
    server = FakeSmtp()
    await fake_sender(fake_world, server).send(replace(DRAFT, attachments=(open_attachment(scan),)))
    ((_envelope, content),) = server.messages
    assert server.sizes == [len(content)]


async def test_auth_none_sends_without_a_token(fake_world: World) -> None:
    setting = await fake_world.store.get_smtp()
    assert setting is not None
    await fake_world.store.put_smtp(
        replace(setting, auth=AuthMethod.NONE, provider=None, account=None)
    )
    server = FakeSmtp()
    await fake_sender(fake_world, server).send(
        replace(DRAFT, attachments=(Attachment.of_bytes("a.txt", b"1"),))
    )
    assert server.tokens == []
    assert len(server.messages) == 1
