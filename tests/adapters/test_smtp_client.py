"""The aiosmtplib adapter against the sandbox SMTP server (real TLS, real tokens checked by
introspection), and against small scripted servers for what no honest server does."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from sandbox_support import DEFAULT_USER, Sandbox
from smtpserver_support import SmtpSandbox, sandbox_access_token
from tokenpost import sasl
from tokenpost.adapters.smtp_client import AioSmtpConnector, AioSmtpSession
from tokenpost.errors import (
    MailAuthError,
    MailPolicyError,
    MailRejectedError,
    RemoteProtocolError,
    TlsVerifyError,
    TransportError,
)
from tokenpost.mime import Attachment, Draft, Mailbox, build
from tokenpost.ports import Envelope
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, Security, SmtpSetting

SENDER = "scanner@example.test"
TO = "bob@example.test"
ENVELOPE = Envelope(SENDER, (TO,))
SMALL = b"From: scanner@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n"
LONG_TOKEN = "sbx_static_" + "T" * 3000  # real providers issue tokens of kilobytes


def peer_setting(
    peer: SmtpSandbox,
    security: Security = Security.STARTTLS,
    *,
    ca_file: str | None = "peer",
    auth: AuthMethod = AuthMethod.OAUTH2,
    timeout: int = 10,
) -> SmtpSetting:
    port = peer.ready.tls_port if security is Security.TLS else peer.ready.starttls_port
    return SmtpSetting(
        peer.host,
        port,
        security,
        timeout,
        "Scanner",
        SENDER,
        auth,
        account=DEFAULT_USER,
        ca_file=str(peer.ready.ca_file) if ca_file == "peer" else ca_file,
    )


@asynccontextmanager
async def opened(
    setting: SmtpSetting, steps: list[str] | None = None
) -> AsyncIterator[AioSmtpSession]:
    session = await AioSmtpConnector().connect(
        setting, on_step=(steps.append if steps is not None else lambda step: None)
    )
    try:
        yield session
    finally:
        await session.close()


@pytest.fixture
def token(sandbox: Sandbox) -> Secret:
    return Secret(sandbox_access_token(sandbox, DEFAULT_USER))


# --- connecting ---------------------------------------------------------------------------------


async def test_starttls_steps_and_mechanisms(smtp_peer: SmtpSandbox) -> None:
    steps: list[str] = []
    async with opened(peer_setting(smtp_peer), steps) as session:
        assert session.auth_mechanisms == {"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"}
    assert steps == ["connect", "greeting", "ehlo", "starttls", "ehlo", "quit"]


async def test_implicit_tls_steps(smtp_peer: SmtpSandbox) -> None:
    steps: list[str] = []
    async with opened(peer_setting(smtp_peer, Security.TLS), steps) as session:
        assert "XOAUTH2" in session.auth_mechanisms
    assert steps == ["connect", "tls", "greeting", "ehlo", "quit"]


async def test_security_none_sees_no_auth_before_tls(smtp_peer: SmtpSandbox) -> None:
    async with opened(peer_setting(smtp_peer, Security.NONE, ca_file=None)) as session:
        assert session.auth_mechanisms == frozenset()


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
async def test_a_certificate_from_another_ca_does_not_verify(
    smtp_peer: SmtpSandbox, tmp_path: Path, security: Security
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    steps: list[str] = []
    with pytest.raises(TlsVerifyError, match=r"did not verify.*--ca-file") as caught:
        await AioSmtpConnector().connect(
            peer_setting(smtp_peer, security, ca_file=str(other_ca)), on_step=steps.append
        )
    assert smtp_peer.host in str(caught.value)
    assert steps[-1] in {"connect", "ehlo"}  # TLS never completed


async def test_the_system_store_does_not_trust_the_sandbox_ca(smtp_peer: SmtpSandbox) -> None:
    with pytest.raises(TlsVerifyError):
        await AioSmtpConnector().connect(peer_setting(smtp_peer, Security.TLS, ca_file=None))


async def test_an_unreadable_ca_file_is_bad_usage(smtp_peer: SmtpSandbox, tmp_path: Path) -> None:
    from tokenpost.errors import UsageError

    with pytest.raises(UsageError, match=r"cannot use the CA file .*missing\.pem \(--ca-file\)"):
        await AioSmtpConnector().connect(
            peer_setting(smtp_peer, ca_file=str(tmp_path / "missing.pem"))
        )


async def test_a_closed_port_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setting = SmtpSetting("127.0.0.1", port, Security.NONE, 5, "S", SENDER, AuthMethod.NONE)
    with pytest.raises(TransportError, match=f"cannot connect to 127.0.0.1:{port}"):
        await AioSmtpConnector().connect(setting)


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_oauth_mechanisms_with_a_sandbox_token(
    smtp_peer: SmtpSandbox, token: Secret, security: Security, mechanism: str
) -> None:
    setting = peer_setting(smtp_peer, security)
    steps: list[str] = []
    async with opened(setting, steps) as session:
        await session.authenticate(oauth_client(mechanism, token, setting))
        await session.send(ENVELOPE, [SMALL])
    assert "auth" in steps
    assert smtp_peer.auth_count(mechanism, "success") == 1
    (message,) = smtp_peer.messages()
    assert message.envelope["mechanism"] == mechanism
    assert message.envelope["auth_user"] == DEFAULT_USER


def oauth_client(mechanism: str, token: Secret, setting: SmtpSetting) -> sasl.SaslClient:
    if mechanism == "XOAUTH2":
        return sasl.xoauth2(DEFAULT_USER, token)
    return sasl.oauthbearer(DEFAULT_USER, token, setting.server, setting.port)


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_a_long_token_goes_two_step(smtp_peer: SmtpSandbox, mechanism: str) -> None:
    smtp_peer.set_knobs(static_tokens={DEFAULT_USER: LONG_TOKEN})
    setting = peer_setting(smtp_peer)
    client = oauth_client(mechanism, Secret(LONG_TOKEN), setting)
    assert sasl.auth_command("AUTH", client, limit=sasl.SMTP_COMMAND_LIMIT)[1] is False
    async with opened(setting) as session:
        await session.authenticate(oauth_client(mechanism, Secret(LONG_TOKEN), setting))
    assert smtp_peer.auth_count(mechanism, "success") == 1


async def test_google_style_refusal_carries_the_error_challenge_status(
    smtp_peer: SmtpSandbox, sandbox: Sandbox
) -> None:
    setting = peer_setting(smtp_peer)
    async with opened(setting) as session:
        with pytest.raises(MailAuthError) as caught:
            await session.authenticate(sasl.xoauth2(DEFAULT_USER, Secret("sbx_at_wrong")))
        with pytest.raises(MailAuthError) as bearer:
            await session.authenticate(
                sasl.oauthbearer(DEFAULT_USER, Secret("sbx_at_wrong"), setting.server, 1)
            )
        # The session survives a refusal: the right token passes on the same connection.
        await session.authenticate(
            sasl.xoauth2(DEFAULT_USER, Secret(sandbox_access_token(sandbox)))
        )
    error = caught.value
    assert not isinstance(error, MailPolicyError)
    assert error.status == "400"
    assert error.reply.startswith("535 5.7.8 Username and Password not accepted")
    assert "sbx_at_wrong" not in str(error) + error.reply
    assert bearer.value.status == "invalid_token"


async def test_microsoft_style_refusal_is_535_5_7_3_without_status(
    smtp_peer: SmtpSandbox, sandbox: Sandbox
) -> None:
    smtp_peer.set_knobs(style="microsoft")
    async with opened(peer_setting(smtp_peer)) as session:
        assert session.auth_mechanisms == {"LOGIN", "XOAUTH2"}
        with pytest.raises(MailAuthError) as caught:
            await session.authenticate(sasl.xoauth2(DEFAULT_USER, Secret("sbx_at_wrong")))
    assert caught.value.status == ""
    assert caught.value.reply == "535 5.7.3 Authentication unsuccessful [smtp.sandbox.test]"


@pytest.mark.parametrize(
    ("block", "fix_says"),
    [
        ("tenant", "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"),
        ("mailbox", "Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false"),
        ("security_defaults", "security defaults"),
    ],
)
async def test_exchange_policy_refusal_is_a_policy_error_with_the_fix(
    smtp_peer: SmtpSandbox, token: Secret, block: str, fix_says: str
) -> None:
    smtp_peer.set_knobs(style="microsoft", policy={DEFAULT_USER: block})
    async with opened(peer_setting(smtp_peer)) as session:
        with pytest.raises(MailPolicyError) as caught:
            await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
    assert caught.value.reply.startswith("535 5.7.139 Authentication unsuccessful")
    assert fix_says in str(caught.value.fix)
    assert token.reveal() not in str(caught.value)


async def test_basic_auth_retired_is_a_policy_error(smtp_peer: SmtpSandbox) -> None:
    smtp_peer.set_knobs(basic_retired=True, passwords={DEFAULT_USER: "pw"})
    async with opened(peer_setting(smtp_peer, auth=AuthMethod.PASSWORD)) as session:
        with pytest.raises(MailPolicyError) as caught:
            await session.authenticate(sasl.plain(DEFAULT_USER, Secret("pw")))
    assert caught.value.reply.startswith("550 5.7.30")
    assert "OAuth 2.0" in str(caught.value.fix)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_passwords(smtp_peer: SmtpSandbox, mechanism: str) -> None:
    smtp_peer.set_knobs(passwords={DEFAULT_USER: "right horse"})
    make = sasl.plain if mechanism == "PLAIN" else sasl.login
    async with opened(peer_setting(smtp_peer, auth=AuthMethod.PASSWORD)) as session:
        with pytest.raises(MailAuthError, match="refused"):
            await session.authenticate(make(DEFAULT_USER, Secret("wrong")))
        await session.authenticate(make(DEFAULT_USER, Secret("right horse")))
    assert smtp_peer.auth_count(mechanism, "success") == 1


# --- sending ------------------------------------------------------------------------------------


async def test_dot_stuffing_across_chunk_boundaries(smtp_peer: SmtpSandbox, token: Secret) -> None:
    chunks = [b"Subject: dots\r\n\r\n", b".one\r\n", b"..two\r\n.", b"\r\n.", b"three\r\nend"]
    async with opened(peer_setting(smtp_peer)) as session:
        await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
        await session.send(ENVELOPE, chunks)
    (message,) = smtp_peer.messages()
    assert message.content == b"".join(chunks) + b"\r\n"


async def test_refused_recipients_send_nothing_and_the_session_goes_on(
    smtp_peer: SmtpSandbox, token: Secret
) -> None:
    smtp_peer.set_knobs(reject_rcpt=["nobody@example.test"])
    envelope = Envelope(SENDER, (TO, "nobody@example.test"))
    async with opened(peer_setting(smtp_peer)) as session:
        await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
        with pytest.raises(
            MailRejectedError, match=re.escape("nobody@example.test: 550 5.1.1")
        ) as caught:
            await session.send(envelope, [SMALL])
        assert caught.value.transient is False
        assert smtp_peer.messages() == []
        await session.send(ENVELOPE, [SMALL])
    assert len(smtp_peer.messages()) == 1


async def test_sending_without_auth_is_refused(smtp_peer: SmtpSandbox) -> None:
    async with opened(peer_setting(smtp_peer)) as session:
        with pytest.raises(MailRejectedError, match=re.escape("530 5.7.57")):
            await session.send(ENVELOPE, [SMALL])


async def test_a_drop_mid_data_is_a_transport_error(smtp_peer: SmtpSandbox, token: Secret) -> None:
    smtp_peer.set_knobs(drop_after_data_bytes=100_000)
    async with opened(peer_setting(smtp_peer)) as session:
        await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
        with pytest.raises(TransportError):
            await session.send(ENVELOPE, message_chunks(5 * 1024 * 1024))
        with pytest.raises(TransportError):  # the session is gone, and says so
            await session.send(ENVELOPE, [SMALL])
    assert smtp_peer.messages() == []
    assert smtp_peer.stats()["messages_dropped"] == 1


def message_chunks(size: int, block: int = 64 * 1024) -> Iterator[bytes]:
    """A MIME message with a `size`-octet attachment made on the fly."""

    def content() -> Iterator[bytes]:
        for start in range(0, size, block):
            yield bytes([start // block % 251]) * min(block, size - start)

    attachment = Attachment("big.bin", content(), size=size)
    draft = Draft(to=(TO,), subject="big", attachments=(attachment,))
    return build(
        draft, Mailbox("S", SENDER), date=datetime(2024, 1, 1, tzinfo=UTC), message_id="<m@x>"
    )


async def test_a_20_mb_attachment_is_streamed_with_bounded_memory(
    smtp_peer: SmtpSandbox, token: Secret
) -> None:
    size = 20 * 1024 * 1024
    expected = hashlib.sha256(b"".join(message_chunks(size))).hexdigest()
    progress: list[int] = []
    async with opened(peer_setting(smtp_peer, Security.TLS)) as session:
        await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
        tracing = tracemalloc.is_tracing()
        tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        try:
            await session.send(ENVELOPE, message_chunks(size), on_progress=progress.append)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            if not tracing:
                tracemalloc.stop()
    assert peak - base < 8 * 1024 * 1024, peak - base
    (message,) = smtp_peer.messages()
    assert hashlib.sha256(message.content).hexdigest() == expected
    assert progress == sorted(progress)
    assert progress[-1] == len(message.content)


# --- servers outside the protocol ---------------------------------------------------------------

Handler = Callable[["ScriptedPeer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ScriptedPeer:
    """A loopback TCP server that runs `handler` per connection and records what it read."""

    handler: Handler
    lines: list[bytes] = field(default_factory=list)
    port: int = 0

    async def line(self, reader: asyncio.StreamReader) -> bytes:
        data = await reader.readline()
        self.lines.append(data)
        return data


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[ScriptedPeer]:
    peer = ScriptedPeer(handler)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(peer, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    async with server:
        yield peer


def scripted_setting(peer: ScriptedPeer, security: Security = Security.NONE) -> SmtpSetting:
    return SmtpSetting("127.0.0.1", peer.port, security, 2, "S", SENDER, AuthMethod.NONE)


async def greet_and_ehlo(
    peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ehlo: bytes
) -> None:
    writer.write(b"220 scripted ESMTP\r\n")
    await peer.line(reader)
    writer.write(ehlo)
    await writer.drain()


async def test_starttls_not_offered_never_goes_on_in_plaintext() -> None:
    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await greet_and_ehlo(peer, reader, writer, b"250-scripted\r\n250 AUTH PLAIN XOAUTH2\r\n")
        while await peer.line(reader):
            writer.write(b"250 ok\r\n")

    async with scripted(handler) as peer:
        setting = scripted_setting(peer, Security.STARTTLS)
        with pytest.raises(TransportError, match="does not offer STARTTLS"):
            await AioSmtpConnector().connect(setting)
    assert [line.split()[0] for line in peer.lines if line] == [b"EHLO"]


async def test_a_refused_greeting_is_a_rejection() -> None:
    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"554 5.7.1 no service for you\r\n")
        await writer.drain()

    async with scripted(handler) as peer:
        with pytest.raises(MailRejectedError, match=re.escape("554 5.7.1 no service")):
            await AioSmtpConnector().connect(scripted_setting(peer))


@pytest.mark.parametrize(
    "ehlo",
    [b"hello there\r\n", b"250-" + b"x" * 40_000 + b"\r\n250 ok\r\n"],
    ids=["no-code", "oversized"],
)
async def test_a_reply_outside_the_protocol_is_a_protocol_error(ehlo: bytes) -> None:
    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await greet_and_ehlo(peer, reader, writer, ehlo)
        await reader.read()

    async with scripted(handler) as peer:
        with pytest.raises(RemoteProtocolError):
            await AioSmtpConnector().connect(scripted_setting(peer))


async def test_a_silent_server_times_out() -> None:
    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()

    async with scripted(handler) as peer:
        with pytest.raises(TransportError, match="did not answer in time"):
            await AioSmtpConnector().connect(scripted_setting(peer))


async def test_421_closes_the_session() -> None:
    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await greet_and_ehlo(peer, reader, writer, b"250 scripted\r\n")
        await peer.line(reader)
        writer.write(b"421 4.3.2 shutting down\r\n")
        await writer.drain()

    async with scripted(handler) as peer:
        session = await AioSmtpConnector().connect(scripted_setting(peer))
        with pytest.raises(TransportError, match=re.escape("421 4.3.2 shutting down")):
            await session.send(ENVELOPE, [SMALL])
        await session.close()
        await session.close()  # closing twice is fine


async def test_a_temporary_auth_failure_is_transient() -> None:
    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await greet_and_ehlo(peer, reader, writer, b"250-scripted\r\n250 AUTH XOAUTH2\r\n")
        await peer.line(reader)
        writer.write(b"454 4.7.0 Temporary authentication failure\r\n")
        await writer.drain()
        await reader.read()

    async with scripted(handler) as peer:
        session = await AioSmtpConnector().connect(scripted_setting(peer))
        with pytest.raises(TransportError, match="cannot authenticate now: 454"):
            await session.authenticate(sasl.xoauth2(DEFAULT_USER, Secret("t0ken")))
        await session.close()


# --- SIZE (RFC 1870) ----------------------------------------------------------------------------


def sized(size: int) -> tuple[list[bytes], int]:
    """A message of exactly `size` octets (CRLF lines, no dots to stuff) and its size."""
    head = b"Subject: sized\r\n\r\n"
    body_lines, rest = divmod(size - len(head), 100)
    assert rest >= 2 or rest == 0, "choose a size that ends in a whole line"
    lines = [b"x" * 98 + b"\r\n"] * body_lines + ([b"y" * (rest - 2) + b"\r\n"] if rest else [])
    chunks = [head, *lines]
    assert sum(map(len, chunks)) == size
    return chunks, size


async def test_a_message_over_the_size_limit_is_refused_before_mail_from(
    smtp_peer: SmtpSandbox, token: Secret
) -> None:
    smtp_peer.set_knobs(size_limit=10_000)
    big, big_size = sized(20_020)
    small, small_size = sized(9_000)
    async with opened(peer_setting(smtp_peer)) as session:
        assert session.size_limit == 10_000
        await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
        with pytest.raises(MailRejectedError) as caught:
            await session.send(ENVELOPE, big, size=big_size)
        assert caught.value.transient is False
        assert smtp_peer.stats()["mail_commands"] == 0  # nothing was offered
        await session.send(ENVELOPE, small, size=small_size)  # the session goes on
    message = str(caught.value)
    assert "19.6 KiB (20020 bytes)" in message
    assert "9.8 KiB (10000 bytes)" in message
    assert "send smaller attachments" in message
    assert "ask the mail administrator for a higher limit" in message
    (received,) = smtp_peer.messages()
    assert received.envelope["mail_options"] == [f"SIZE={len(received.content)}"]
    assert len(received.content) == small_size
    assert smtp_peer.stats()["mail_commands"] == 1


async def test_a_server_without_size_gets_no_size_parameter(
    smtp_peer: SmtpSandbox, token: Secret
) -> None:
    smtp_peer.set_knobs(size_limit=0)  # aiosmtpd then advertises no SIZE
    chunks, size = sized(50_000)
    async with opened(peer_setting(smtp_peer)) as session:
        assert session.size_limit is None
        await session.authenticate(sasl.xoauth2(DEFAULT_USER, token))
        await session.send(ENVELOPE, chunks, size=size)
    (received,) = smtp_peer.messages()
    assert received.envelope["mail_options"] == []
    assert len(received.content) == size


@dataclass
class Sink:
    """What a scripted server read: every MAIL line, and the octets after EHLO."""

    mail_lines: list[bytes] = field(default_factory=list)
    octets_after_ehlo: int = 0
    messages: list[bytes] = field(default_factory=list)


def accepting(ehlo: bytes, sink: Sink, *, mail_reply: bytes = b"250 ok\r\n") -> Handler:
    """A server that advertises `ehlo` and accepts every message (or answers MAIL so)."""

    async def handler(
        peer: ScriptedPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await greet_and_ehlo(peer, reader, writer, ehlo)
        while line := await reader.readline():
            sink.octets_after_ehlo += len(line)
            verb = line[:4].upper()
            if verb == b"MAIL":
                sink.mail_lines.append(line)
                writer.write(mail_reply)
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                data = b""
                while (line := await reader.readline()) not in (b".\r\n", b""):
                    data += line
                sink.octets_after_ehlo += len(data) + len(line)
                sink.messages.append(data)
                writer.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()

    return handler


async def test_an_oversized_message_sends_not_one_octet_of_it() -> None:
    sink = Sink()
    chunks, size = sized(2_000)
    async with scripted(accepting(b"250-scripted\r\n250 SIZE 1000\r\n", sink)) as peer:
        session = await AioSmtpConnector().connect(scripted_setting(peer))
        with pytest.raises(MailRejectedError, match=r"1000 bytes"):
            await session.send(ENVELOPE, chunks, size=size)
        await session.close()
    assert sink.mail_lines == []
    assert sink.octets_after_ehlo == len(b"QUIT\r\n")


@pytest.mark.parametrize("advertised", [b"SIZE", b"SIZE 0", b"SIZE unlimited"])
async def test_size_without_a_fixed_limit_is_announced_and_never_refused(
    advertised: bytes,
) -> None:
    sink = Sink()
    chunks, size = sized(300_000)
    ehlo = b"250-scripted\r\n250 " + advertised + b"\r\n"
    async with scripted(accepting(ehlo, sink)) as peer:
        session = await AioSmtpConnector().connect(scripted_setting(peer))
        assert session.size_limit == 0
        await session.send(ENVELOPE, chunks, size=size)
        await session.close()
    assert sink.mail_lines == [f"MAIL FROM:<{SENDER}> SIZE={size}\r\n".encode()]
    assert sink.messages == [b"".join(chunks)]


async def test_a_552_to_mail_from_with_size_names_the_size() -> None:
    sink = Sink()
    chunks, size = sized(2_000)
    reply = b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    async with scripted(accepting(b"250-scripted\r\n250 SIZE\r\n", sink, mail_reply=reply)) as peer:
        session = await AioSmtpConnector().connect(scripted_setting(peer))
        with pytest.raises(MailRejectedError) as caught:
            await session.send(ENVELOPE, chunks, size=size)
        await session.close()
    assert str(caught.value) == (
        f"the server refused a message of {size} bytes: 552 5.3.4 Message size exceeds fixed "
        "maximum message size"
    )
    assert caught.value.transient is False
    assert sink.messages == []
