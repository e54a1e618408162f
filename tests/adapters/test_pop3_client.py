"""The asyncio POP3 driver against the sandbox POP3 server (in-process, on the server core) and
against raw sockets that misbehave."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from popserver_support import PopHarness, start_pop_harness
from tokenpost.adapters.pop3_client import READ_SIZE, Pop3ClientConnector, Pop3ClientSession
from tokenpost.errors import (
    MailAuthError,
    RemoteProtocolError,
    TlsVerifyError,
    TransportError,
    UsageError,
)
from tokenpost.i18n import translator
from tokenpost.pop3.wire import MAX_DATA_LINE
from tokenpost.sasl import oauthbearer, xoauth2
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost_sandbox.popknobs import Style

GERMAN = translator("de").gettext
USER = "alice@example.test"
TOKEN = "sbx_at_" + "t0k3n" * 300  # 1.5 KB, like real provider tokens
PASSWORD = "correct horse battery"
MESSAGE = b"Subject: one\r\n\r\n.leading dot\r\n.\r\nlast\r\n"


@pytest.fixture
async def pop(tmp_path: Path) -> AsyncIterator[PopHarness]:
    harness = await start_pop_harness(tmp_path, {USER: TOKEN})
    harness.set_knobs(passwords={USER: Secret(PASSWORD)})
    yield harness
    await harness.close()


async def connect(setting: PopSetting, steps: list[str] | None = None) -> Pop3ClientSession:
    record = steps.append if steps is not None else (lambda step: None)
    return await Pop3ClientConnector().connect(setting, timeout=5, on_step=record)


async def test_pop3s_xoauth2_uidl_retr_dele_quit(pop: PopHarness) -> None:
    first = pop.add_message(MESSAGE)
    second = pop.add_message(b"two\r\n")
    steps: list[str] = []
    session = await connect(pop.setting(Security.TLS), steps)
    assert {"UIDL", "SASL XOAUTH2", "SASL OAUTHBEARER"} <= session.capabilities
    assert "STLS" not in session.capabilities
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    assert await session.uidl() == {1: first.name, 2: second.name}
    chunks: list[bytes] = []
    assert await session.retrieve(1, chunks.append) == len(MESSAGE)
    assert b"".join(chunks) == MESSAGE
    await session.delete(1)
    await session.quit()
    assert steps == ["connect", "tls", "greeting", "capa", "auth", "quit"]
    assert pop.messages() == [second]


async def test_stls_upgrades_and_asks_capa_again(pop: PopHarness) -> None:
    steps: list[str] = []
    session = await connect(pop.setting(Security.STARTTLS), steps)
    assert steps == ["connect", "greeting", "capa", "starttls", "capa"]
    assert "STLS" not in session.capabilities
    await session.authenticate(oauthbearer(USER, Secret(TOKEN), "127.0.0.1", pop.port))
    assert await session.uidl() == {}
    await session.quit()


async def test_starttls_not_offered_never_falls_back_to_plaintext(pop: PopHarness) -> None:
    pop.set_knobs(stls=False)
    with pytest.raises(RemoteProtocolError, match="does not offer STLS"):
        await connect(pop.setting(Security.STARTTLS))
    assert pop.token_checks == []


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
async def test_certificate_of_another_ca_is_tls_verify_error(
    pop: PopHarness, tmp_path: Path, security: Security
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    setting = pop.setting(security, ca_file=other)
    with pytest.raises(TlsVerifyError, match=r"127\.0\.0\.1:\d+") as caught:
        await connect(setting)
    assert "certificate" in str(caught.value)
    assert f"(trusted: the CA file {other} (--ca-file)); check that the CA file given " in (
        str(caught.value)
    )
    german = caught.value.translate(GERMAN)
    assert german.startswith(
        f"das Zertifikat von 127.0.0.1:{setting.port} konnte nicht geprüft werden: "
    )
    assert f"(Vertrauensbasis: die CA-Datei {other} (--ca-file)); prüfen Sie" in german


async def test_unreadable_ca_file_is_usage_error(pop: PopHarness, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"missing\.pem \(--ca-file\): no such file"):
        await connect(pop.setting(Security.TLS, ca_file=tmp_path / "missing.pem"))


async def test_plain_connection_with_user_pass(pop: PopHarness) -> None:
    pop.add_message(MESSAGE)
    session = await connect(pop.setting(Security.NONE, auth=AuthMethod.PASSWORD))
    await session.login(USER, Secret(PASSWORD))
    assert list(await session.uidl()) == [1]
    await session.quit()


async def test_wrong_password_is_mail_auth_error_and_the_session_stays_usable(
    pop: PopHarness,
) -> None:
    setting = pop.setting(Security.TLS, auth=AuthMethod.PASSWORD)
    session = await connect(setting)
    with pytest.raises(MailAuthError) as caught:
        await session.login(USER, Secret("wrong"))
    assert caught.value.reply == "-ERR [AUTH] Authentication failed."
    assert caught.value.translate(GERMAN) == (
        f"127.0.0.1:{setting.port} hat die Authentifizierung abgelehnt (PASS): -ERR [AUTH] "
        "Authentication failed.; prüfen Sie Konto und Passwort der POP-Einstellung"
    )
    await session.login(USER, Secret(PASSWORD))
    await session.quit()


async def test_password_too_long_for_a_command_line_is_usage_error(pop: PopHarness) -> None:
    session = await connect(pop.setting(Security.TLS, auth=AuthMethod.PASSWORD))
    password = "p" * 260
    with pytest.raises(UsageError, match="PASS") as caught:
        await session.login(USER, Secret(password))
    assert "ppppp" not in str(caught.value)
    assert caught.value.translate(GERMAN) == (
        "PASS: Benutzername oder Passwort können nicht in einem POP3-Befehl gesendet werden "
        "(PASS-Befehl mit 267 Oktetten überschreitet die POP3-Grenze von 255); korrigieren Sie "
        "Konto oder Passwort der POP-Einstellung"
    )
    await session.close()


async def test_apop(pop: PopHarness) -> None:
    session = await connect(pop.setting(Security.TLS))
    assert session.apop_timestamp is not None
    with pytest.raises(MailAuthError):
        await session.apop(USER, Secret("wrong"))
    await session.apop(USER, Secret(PASSWORD))
    await session.quit()


async def test_apop_without_timestamp_is_refused_before_sending(pop: PopHarness) -> None:
    pop.set_knobs(style=Style.EXCHANGE)
    session = await connect(pop.setting(Security.TLS))
    assert session.apop_timestamp is None
    with pytest.raises(MailAuthError, match="APOP"):
        await session.apop(USER, Secret(PASSWORD))
    await session.close()


@pytest.mark.parametrize(
    ("style", "mechanism", "reply", "status"),
    [
        (Style.STANDARD, "XOAUTH2", "-ERR [AUTH] Authentication failed.", "400"),
        (Style.STANDARD, "OAUTHBEARER", "-ERR [AUTH] Authentication failed.", "invalid_token"),
        (Style.GOOGLE, "XOAUTH2", "-ERR [AUTH] Invalid credentials.", "400"),
        (
            Style.EXCHANGE,
            "XOAUTH2",
            "-ERR Authentication failure: unknown user name or bad password.",
            "",
        ),
    ],
)
async def test_wrong_token_is_mail_auth_error_with_reply_and_status(
    pop: PopHarness, style: Style, mechanism: str, reply: str, status: str
) -> None:
    pop.set_knobs(style=style)
    session = await connect(pop.setting(Security.TLS))
    wrong = Secret("sbx_at_wrong")
    client = xoauth2(USER, wrong) if mechanism == "XOAUTH2" else oauthbearer(USER, wrong, "h", 1)
    with pytest.raises(MailAuthError) as caught:
        await session.authenticate(client)
    assert caught.value.reply == reply
    assert caught.value.status == status
    assert str(caught.value).endswith(
        "check the account, that POP is enabled for the mailbox, and that the token was obtained "
        "for this account (tokenpost token get)"
    )
    assert "sbx_at_wrong" not in str(caught.value)
    assert "sbx_at_wrong" not in caught.value.translate(GERMAN)
    # Still in AUTHORIZATION: a retry with a fresh token on the same connection works.
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    await session.quit()


async def test_exchange_style_needs_the_two_line_form(pop: PopHarness) -> None:
    pop.set_knobs(style=Style.EXCHANGE)
    session = await connect(pop.setting(Security.TLS))
    assert session.capabilities == frozenset({"UIDL", "SASL", "SASL PLAIN", "SASL XOAUTH2"})
    # A short token would fit on the AUTH line; the driver still sends it on the "+ ".
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    await session.quit()


async def test_mailbox_in_use_is_transient_not_an_auth_failure(pop: PopHarness) -> None:
    holder = await connect(pop.setting(Security.TLS))
    await holder.authenticate(xoauth2(USER, Secret(TOKEN)))
    second = await connect(pop.setting(Security.TLS))
    with pytest.raises(TransportError, match="IN-USE") as caught:
        await second.authenticate(xoauth2(USER, Secret(TOKEN)))
    assert not isinstance(caught.value, MailAuthError)
    await second.close()
    await holder.quit()


async def test_close_without_quit_deletes_nothing(pop: PopHarness) -> None:
    path = pop.add_message(MESSAGE)
    session = await connect(pop.setting(Security.TLS))
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    await session.delete(1)
    await session.close()
    await session.close()  # idempotent, never raises
    assert pop.messages() == [path]
    with pytest.raises(TransportError):
        await session.uidl()


async def test_drop_mid_retr_is_transport_error_and_nothing_is_deleted(pop: PopHarness) -> None:
    path = pop.add_message(b"".join(b"line %d\r\n" % n for n in range(20_000)))
    pop.set_knobs(drop_retr_after=50_000)
    session = await connect(pop.setting(Security.TLS))
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    received: list[bytes] = []
    with pytest.raises(TransportError):
        await session.retrieve(1, received.append)
    assert sum(map(len, received)) < path.stat().st_size
    with pytest.raises(TransportError, match="no longer usable"):
        await session.delete(1)
    await session.close()
    assert pop.messages() == [path]


async def test_large_message_is_streamed_in_chunks(pop: PopHarness) -> None:
    lines = [b".dot %d" % n if n % 7 == 0 else b"x" * (n % 300) for n in range(40_000)]
    message = b"".join(line + b"\r\n" for line in lines) + b".\r\n"
    pop.add_message(message)
    session = await connect(pop.setting(Security.TLS))
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    chunks: list[bytes] = []
    assert await session.retrieve(1, chunks.append) == len(message)
    assert b"".join(chunks) == message
    assert len(chunks) > 10
    # One read's worth of lines plus the line it completed: bounded whatever the size.
    assert max(map(len, chunks)) <= READ_SIZE + MAX_DATA_LINE
    await session.quit()


async def test_sink_failure_propagates_and_breaks_the_session(pop: PopHarness) -> None:
    pop.add_message(MESSAGE)
    session = await connect(pop.setting(Security.TLS))
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))

    def full_disk(chunk: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        await session.retrieve(1, full_disk)
    with pytest.raises(TransportError):
        await session.uidl()
    await session.close()


@pytest.mark.parametrize("where", ["greeting", "retr"])
async def test_oversized_lines_are_remote_protocol_errors(pop: PopHarness, where: str) -> None:
    pop.add_message(MESSAGE)
    pop.set_knobs(oversized=where)
    if where == "greeting":
        with pytest.raises(RemoteProtocolError, match="512"):
            await connect(pop.setting(Security.TLS))
        return
    session = await connect(pop.setting(Security.TLS))
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    with pytest.raises(RemoteProtocolError, match="65536"):
        await session.retrieve(1, lambda chunk: None)
    await session.close()


async def test_debug_log_shows_the_exchange_without_credentials(
    pop: PopHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokenpost.pop3")
    session = await connect(pop.setting(Security.TLS))
    await session.login(USER, Secret(PASSWORD))
    await session.quit()
    session = await connect(pop.setting(Security.TLS))
    await session.apop(USER, Secret(PASSWORD))
    await session.quit()
    session = await connect(pop.setting(Security.TLS))
    with pytest.raises(MailAuthError):
        await session.authenticate(xoauth2(USER, Secret("sbx_at_wrong_one")))
    await session.authenticate(xoauth2(USER, Secret(TOKEN)))
    await session.close()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "C: AUTH XOAUTH2" in text
    assert "C: PASS ***" in text
    assert "C: ***" in text
    assert f"C: APOP {USER} ***" in text
    for secret in (PASSWORD, TOKEN[:40], "sbx_at_wrong_one", "dXNlcj1"):
        assert secret not in text


# --- raw peers that misbehave ----------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def raw_setting(
    port: int, security: Security = Security.NONE, ca_file: str | None = None
) -> PopSetting:
    return PopSetting(
        "raw", "127.0.0.1", port, security, 60, AuthMethod.NONE, "unused", ca_file=ca_file
    )


async def raw_server(handler: Handler) -> tuple[asyncio.Server, PopSetting]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, raw_setting(server.sockets[0].getsockname()[1])


def canned(reply: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply:
            writer.write(reply)
            await writer.drain()
            await reader.read(1000)
        writer.close()

    return handler


async def run_against(reply: bytes, *, timeout: float = 5) -> Pop3ClientSession:
    server, setting = await raw_server(canned(reply))
    try:
        async with server:
            return await Pop3ClientConnector().connect(setting, timeout=timeout)
    finally:
        server.close()


async def test_greeting_err_is_mail_auth_error() -> None:
    with pytest.raises(MailAuthError) as caught:
        await run_against(b"-ERR access denied for your address\r\n")
    assert caught.value.reply == "-ERR access denied for your address"


async def test_greeting_err_sys_temp_is_transient() -> None:
    with pytest.raises(TransportError, match="SYS/TEMP"):
        await run_against(b"-ERR [SYS/TEMP] too many connections\r\n")


async def test_server_closing_before_the_greeting_is_transport_error() -> None:
    with pytest.raises(TransportError, match="closed the connection"):
        await run_against(b"")


async def test_garbage_greeting_is_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError, match="not a POP3 reply") as caught:
        await run_against(b"220 smtp.example.com ESMTP\r\n")
    server = str(caught.value).split(": ", 1)[0]
    assert caught.value.translate(GERMAN) == (
        f"{server}: keine POP3-Antwort auf die Begrüßung: '220 smtp.example.com ESMTP'; prüfen "
        "Sie Servername, Port und Sicherheitseinstellung oder melden Sie es dem Betreiber des "
        "Servers"
    )


async def test_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.close()

    server, setting = await raw_server(silent)
    async with server:
        with pytest.raises(TransportError, match=r"did not answer within 0\.2 s"):
            await Pop3ClientConnector().connect(setting, timeout=0.2)
    server.close()


async def test_refused_connection_is_transport_error() -> None:
    server, setting = await raw_server(canned(b""))
    server.close()
    await server.wait_closed()
    with pytest.raises(TransportError, match="connection refused") as caught:
        await Pop3ClientConnector().connect(setting, timeout=5)
    assert caught.value.translate(GERMAN) == (
        f"die Verbindung zu 127.0.0.1:{setting.port} ist fehlgeschlagen: Verbindung abgelehnt; "
        "prüfen Sie Servername und Port und ob eine Firewall die Verbindung blockiert"
    )


async def test_tls_to_a_plain_server_is_transport_error(tmp_path: Path) -> None:
    server, setting = await raw_server(canned(b"+OK plain\r\n"))
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    tls_setting = raw_setting(setting.port, Security.TLS, str(ca))
    async with server:
        with pytest.raises(TransportError):
            await Pop3ClientConnector().connect(tls_setting, timeout=5)
    server.close()
