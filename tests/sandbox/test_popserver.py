"""The sandbox POP3 server as a subprocess, driven by the standard library's poplib and by raw
TLS sockets (not by tokenpost's own client), with real tokens from the sandbox."""

from __future__ import annotations

import base64
import poplib
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from popserver_support import PopserverProcess, start_popserver
from sandbox_support import Sandbox, SandboxProcess
from smtpserver_support import sandbox_access_token

USER = "alice@example.test"
MESSAGE = b"Subject: dots\r\n\r\n.starts with a dot\r\n.\r\nend\r\n"


@pytest.fixture(scope="module")
def popserver_process(
    sandbox_process: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PopserverProcess]:
    directory = tmp_path_factory.mktemp("popserver")
    process = start_popserver(
        directory, directory / "Maildir", sandbox_process.ready.ca_file.parent
    )
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture
def popserver(popserver_process: PopserverProcess, sandbox: Sandbox) -> Iterator[PopserverProcess]:
    """Default knobs (plus a password for carol) and an empty maildrop."""
    popserver_process.set_knobs(passwords={"carol@example.test": "s3cret pw"})
    maildir = popserver_process.directory / "Maildir"
    for sub in ("new", "cur"):
        shutil.rmtree(maildir / sub, ignore_errors=True)
        (maildir / sub).mkdir(parents=True)
    yield popserver_process
    print(f"--- popserver log ---\n{popserver_process.log()}")


def add_message(server: PopserverProcess, content: bytes, name: str) -> Path:
    path = server.directory / "Maildir" / "new" / name
    path.write_bytes(content)
    return path


def context(server: PopserverProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ready.ca_file))


class RawPop3:
    """Just enough POP3 over a TLS socket to send SASL lines poplib cannot."""

    def __init__(self, server: PopserverProcess) -> None:
        raw = socket.create_connection(("127.0.0.1", server.ready.tls_port), timeout=10)
        self.sock = context(server).wrap_socket(raw, server_hostname="127.0.0.1")
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self) -> bytes:
        return self.file.readline().rstrip(b"\r\n")

    def send(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def xoauth2_blob(user: str, token: str) -> bytes:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def test_ready_file_and_pop3s_capabilities(popserver: PopserverProcess) -> None:
    assert popserver.ready.host == "127.0.0.1"
    pop = poplib.POP3_SSL("127.0.0.1", popserver.ready.tls_port, context=context(popserver))
    try:
        capabilities = pop.capa()
        assert capabilities["SASL"] == ["XOAUTH2", "OAUTHBEARER", "PLAIN"]
        assert "UIDL" in capabilities
        assert "STLS" not in capabilities
    finally:
        pop.quit()


def test_stls_on_the_plain_port(popserver: PopserverProcess) -> None:
    pop = poplib.POP3("127.0.0.1", popserver.ready.port, timeout=10)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context(popserver))
        assert "STLS" not in pop.capa()
        pop.user("carol@example.test")
        pop.pass_("s3cret pw")
        assert pop.stat() == (0, 0)
    finally:
        pop.quit()


def test_xoauth2_two_line_with_a_sandbox_token(
    popserver: PopserverProcess, sandbox: Sandbox
) -> None:
    token = sandbox_access_token(sandbox, USER)
    add_message(popserver, MESSAGE, "1700000001.M1P1.sandbox")
    raw = RawPop3(popserver)
    try:
        assert raw.greeting.startswith(b"+OK tokenpost sandbox POP3 ready. <")
        assert raw.send(b"AUTH XOAUTH2") == b"+ "
        assert raw.send(xoauth2_blob(USER, token)) == f"+OK Logged in as {USER}.".encode()
        assert raw.send(b"UIDL 1") == b"+OK 1 1700000001.M1P1.sandbox"
        assert raw.send(b"QUIT") == b"+OK Bye"
    finally:
        raw.close()


def test_inline_initial_response_is_accepted_in_standard_style(
    popserver: PopserverProcess, sandbox: Sandbox
) -> None:
    token = sandbox_access_token(sandbox, USER)
    raw = RawPop3(popserver)
    try:
        assert raw.send(b"AUTH XOAUTH2 " + xoauth2_blob(USER, token)).startswith(b"+OK")
    finally:
        raw.close()


def test_revoked_token_gets_an_error_challenge_then_err(
    popserver: PopserverProcess, sandbox: Sandbox
) -> None:
    token = sandbox_access_token(sandbox, USER)
    sandbox.control.revoke_user(USER)
    raw = RawPop3(popserver)
    try:
        raw.send(b"AUTH XOAUTH2")
        challenge = raw.send(xoauth2_blob(USER, token))
        assert challenge.startswith(b"+ ")
        assert b'"status":"400"' in base64.b64decode(challenge[2:])
        assert raw.send(b"") == b"-ERR [AUTH] Authentication failed."
    finally:
        raw.close()


def test_token_of_another_user_is_refused(popserver: PopserverProcess, sandbox: Sandbox) -> None:
    token = sandbox_access_token(sandbox, "bob@example.test")
    raw = RawPop3(popserver)
    try:
        raw.send(b"AUTH XOAUTH2")
        assert raw.send(xoauth2_blob(USER, token)).startswith(b"+ ")
        assert raw.send(b"").startswith(b"-ERR")
    finally:
        raw.close()


def test_exchange_style_from_the_knobs_file(popserver: PopserverProcess, sandbox: Sandbox) -> None:
    popserver.set_knobs(style="exchange")
    token = sandbox_access_token(sandbox, USER)
    raw = RawPop3(popserver)
    try:
        assert raw.greeting == (b"+OK The Microsoft Exchange POP3 service is ready. [U0FOREJPWA==]")
        assert raw.send(b"AUTH XOAUTH2 " + xoauth2_blob(USER, token)) == (
            b"-ERR Authentication failure: unknown user name or bad password."
        )
        assert raw.send(b"AUTH XOAUTH2") == b"+ "
        assert raw.send(xoauth2_blob(USER, token)) == b"+OK User successfully authenticated."
    finally:
        raw.close()


def test_retr_unstuffs_and_quit_commits_deletions(popserver: PopserverProcess) -> None:
    kept = add_message(popserver, b"kept\n", "1700000001.M1P1.sandbox")
    gone = add_message(popserver, MESSAGE, "1700000002.M2P1.sandbox:2,S")
    pop = poplib.POP3_SSL("127.0.0.1", popserver.ready.tls_port, context=context(popserver))
    pop.user("carol@example.test")
    pop.pass_("s3cret pw")
    assert pop.uidl()[1] == [b"1 1700000001.M1P1.sandbox", b"2 1700000002.M2P1.sandbox"]
    assert pop.list()[1] == [b"1 6", b"2 " + str(len(MESSAGE)).encode()]
    assert b"\r\n".join(pop.retr(2)[1]) + b"\r\n" == MESSAGE
    pop.dele(1)
    pop.rset()
    pop.dele(2)
    pop.quit()
    assert kept.exists()
    assert not gone.exists()


def test_a_dropped_session_deletes_nothing(popserver: PopserverProcess) -> None:
    path = add_message(popserver, MESSAGE, "1700000001.M1P1.sandbox")
    pop = poplib.POP3_SSL("127.0.0.1", popserver.ready.tls_port, context=context(popserver))
    pop.user("carol@example.test")
    pop.pass_("s3cret pw")
    pop.dele(1)
    pop.close()
    pop = poplib.POP3_SSL("127.0.0.1", popserver.ready.tls_port, context=context(popserver))
    pop.user("carol@example.test")
    pop.pass_("s3cret pw")
    assert pop.stat()[0] == 1
    pop.quit()
    assert path.exists()


def test_apop_with_a_configured_password(popserver: PopserverProcess) -> None:
    pop = poplib.POP3_SSL("127.0.0.1", popserver.ready.tls_port, context=context(popserver))
    try:
        with pytest.raises(poplib.error_proto):
            pop.apop("carol@example.test", "wrong")
        pop.apop("carol@example.test", "s3cret pw")
        assert pop.stat() == (0, 0)
    finally:
        pop.quit()


def test_drop_retr_after_knob(popserver: PopserverProcess) -> None:
    popserver.set_knobs(passwords={"carol@example.test": "pw"}, drop_retr_after=100)
    add_message(popserver, b"x" * 10_000 + b"\r\n", "1700000001.M1P1.sandbox")
    pop = poplib.POP3_SSL("127.0.0.1", popserver.ready.tls_port, context=context(popserver))
    pop.user("carol@example.test")
    pop.pass_("pw")
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        pop.retr(1)
    pop.close()


def test_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    process = start_popserver(tmp_path / "own", tmp_path / "Maildir")
    assert (tmp_path / "own" / "ca.pem").exists()
    assert process.stop() == 0
