"""The private Dovecot POP3 peer, driven with raw sockets (RFC 1939, RFC 2595, RFC 5034).

Tokens are real: issued by the sandbox authorization server; Dovecot checks them there by RFC 7662
introspection. These tests prove what tokenpost's POP3 tests rely on: both TLS ports, SASL
XOAUTH2 and OAUTHBEARER in the two-line form, refusals, and mail dropped in by the test.
"""

from __future__ import annotations

import base64
import json
import pwd
import shutil
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dovecot_support import Dovecot, DovecotError, start_dovecot
from sandbox_support import DEFAULT_USER, Sandbox, SandboxProcess
from smtpserver_support import sandbox_access_token

MAX_LINE = 8192
MESSAGE = (
    b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: scan\r\n\r\n"
    b"first line\r\n.starts with a dot\r\n"
)


class PopWire:
    """Lines over one socket; the TLS layer can be added in the middle (STLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._file = sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def start_tls(self, context: ssl.SSLContext, host: str) -> None:
        self._file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self._file = self.sock.makefile("rb")

    def line(self) -> bytes:
        raw = self._file.readline(MAX_LINE)
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2]

    def send(self, line: str) -> bytes:
        """Send one line; return the first line of the answer."""
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.line()

    def multiline(self) -> list[bytes]:
        """The body of a multi-line answer, dot-unstuffed (RFC 1939 §3)."""
        lines = []
        while (line := self.line()) != b".":
            lines.append(line[1:] if line.startswith(b".") else line)
        return lines


@contextmanager
def pop3s(dovecot: Dovecot) -> Iterator[PopWire]:
    raw = socket.create_connection((dovecot.host, dovecot.pop3s_port), timeout=10)
    wire = PopWire(dovecot.tls_context().wrap_socket(raw, server_hostname=dovecot.host))
    try:
        assert wire.line().startswith(b"+OK")
        yield wire
    finally:
        wire.close()


@contextmanager
def pop3_stls(dovecot: Dovecot) -> Iterator[PopWire]:
    wire = PopWire(socket.create_connection((dovecot.host, dovecot.pop3_port), timeout=10))
    try:
        assert wire.line().startswith(b"+OK")
        assert wire.send("STLS").startswith(b"+OK")
        wire.start_tls(dovecot.tls_context(), dovecot.host)
        yield wire
    finally:
        wire.close()


def capabilities(wire: PopWire) -> list[bytes]:
    assert wire.send("CAPA").startswith(b"+OK")
    return wire.multiline()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def xoauth2_blob(user: str, token: str) -> str:
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01")


def authenticate(wire: PopWire, mechanism: str, blob: str) -> tuple[bytes, dict[str, str] | None]:
    """RFC 5034 two-line AUTH; returns the final line and the error challenge, if any."""
    assert wire.send(f"AUTH {mechanism}") == b"+ "
    answer = wire.send(blob)
    challenge = None
    if answer.startswith(b"+ "):
        challenge = json.loads(base64.b64decode(answer[2:]))
        answer = wire.send("" if mechanism == "XOAUTH2" else b64("\x01"))
    return answer, challenge


@pytest.fixture
def token(sandbox: Sandbox) -> str:
    return sandbox_access_token(sandbox, DEFAULT_USER)


SESSIONS = {"pop3s": pop3s, "stls": pop3_stls}


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_xoauth2_two_line_with_a_sandbox_token(
    dovecot_peer: Dovecot, token: str, session: str
) -> None:
    with SESSIONS[session](dovecot_peer) as wire:
        assert b"SASL XOAUTH2 OAUTHBEARER PLAIN LOGIN" in capabilities(wire)
        answer, challenge = authenticate(wire, "XOAUTH2", xoauth2_blob(DEFAULT_USER, token))
        assert answer.startswith(b"+OK")
        assert challenge is None
        assert wire.send("STAT") == b"+OK 0 0"
        assert wire.send("QUIT").startswith(b"+OK")


def test_oauthbearer_two_line_with_a_sandbox_token(dovecot_peer: Dovecot, token: str) -> None:
    blob = b64(f"n,a={DEFAULT_USER},\x01host=127.0.0.1\x01auth=Bearer {token}\x01\x01")
    with pop3s(dovecot_peer) as wire:
        answer, _ = authenticate(wire, "OAUTHBEARER", blob)
    assert answer.startswith(b"+OK")


@pytest.mark.parametrize(
    "wrong",
    ["unknown-token", "another-user"],
)
def test_a_bad_token_is_refused(
    dovecot_peer: Dovecot, sandbox: Sandbox, token: str, wrong: str
) -> None:
    user = "bob@example.test" if wrong == "another-user" else DEFAULT_USER
    presented = token if wrong == "another-user" else "sbx_at_unknown"
    with pop3s(dovecot_peer) as wire:
        answer, challenge = authenticate(wire, "XOAUTH2", xoauth2_blob(user, presented))
        assert answer.startswith(b"-ERR")
        # Still usable after a failed attempt.
        assert authenticate(wire, "XOAUTH2", xoauth2_blob(DEFAULT_USER, token))[0].startswith(
            b"+OK"
        )
    # Dovecot answers a bad XOAUTH2 token as Gmail does (protocols.md §2.7): a JSON challenge,
    # an empty client line, then -ERR.
    assert challenge == {"status": "401", "schemes": "bearer", "scope": "mail"}


def test_a_revoked_token_is_refused_at_once(
    dovecot_peer: Dovecot, sandbox: Sandbox, token: str
) -> None:
    with pop3s(dovecot_peer) as wire:
        assert authenticate(wire, "XOAUTH2", xoauth2_blob(DEFAULT_USER, token))[0][:3] == b"+OK"
    sandbox.control.revoke_user(DEFAULT_USER)
    with pop3s(dovecot_peer) as wire:
        answer, _ = authenticate(wire, "XOAUTH2", xoauth2_blob(DEFAULT_USER, token))
    assert answer.startswith(b"-ERR")


def test_stls_is_offered_on_the_plain_port_only(dovecot_peer: Dovecot) -> None:
    wire = PopWire(socket.create_connection((dovecot_peer.host, dovecot_peer.pop3_port), 10))
    try:
        assert wire.line().startswith(b"+OK")
        assert b"STLS" in capabilities(wire)
        assert wire.send("STLS").startswith(b"+OK")
        wire.start_tls(dovecot_peer.tls_context(), dovecot_peer.host)
        assert b"STLS" not in capabilities(wire)
    finally:
        wire.close()
    with pop3s(dovecot_peer) as wire:
        assert b"STLS" not in capabilities(wire)


def test_uidl_and_retr_of_an_added_message(dovecot_peer: Dovecot, token: str) -> None:
    dovecot_peer.add_message(DEFAULT_USER, MESSAGE)
    assert dovecot_peer.maildir_count(DEFAULT_USER) == 1
    with pop3s(dovecot_peer) as wire:
        assert authenticate(wire, "XOAUTH2", xoauth2_blob(DEFAULT_USER, token))[0][:3] == b"+OK"
        assert wire.send("STAT") == f"+OK 1 {len(MESSAGE)}".encode()
        assert wire.send("UIDL").startswith(b"+OK")
        ((number, uid),) = (line.split() for line in wire.multiline())
        assert number == b"1"
        assert 1 <= len(uid) <= 70
        assert wire.send("UIDL 1") == b"+OK 1 " + uid
        assert wire.send("RETR 1").startswith(b"+OK")
        assert b"\r\n".join(wire.multiline()) + b"\r\n" == MESSAGE
        assert wire.send("DELE 1").startswith(b"+OK")
        assert wire.send("QUIT").startswith(b"+OK")
    assert dovecot_peer.maildir_count(DEFAULT_USER) == 0


def test_uidl_is_stable_across_sessions(dovecot_peer: Dovecot, token: str) -> None:
    dovecot_peer.add_message(DEFAULT_USER, MESSAGE)
    dovecot_peer.add_message(DEFAULT_USER, MESSAGE.replace(b"scan", b"fax"))
    seen = []
    for _ in range(2):
        with pop3s(dovecot_peer) as wire:
            authenticate(wire, "XOAUTH2", xoauth2_blob(DEFAULT_USER, token))
            assert wire.send("UIDL").startswith(b"+OK")
            seen.append(wire.multiline())
            wire.send("QUIT")
    assert seen[0] == seen[1]
    assert len({line.split()[1] for line in seen[0]}) == 2


def test_plain_password_from_the_passwd_file(dovecot_peer: Dovecot) -> None:
    dovecot_peer.set_password("carol@example.test", "pa55")
    with pop3_stls(dovecot_peer) as wire:
        answer, _ = authenticate(wire, "PLAIN", b64("\0carol@example.test\0wrong"))
        assert answer.startswith(b"-ERR")
        answer, _ = authenticate(wire, "PLAIN", b64("\0carol@example.test\0pa55"))
        assert answer.startswith(b"+OK")


def test_mail_belongs_to_the_mail_user(dovecot_peer: Dovecot) -> None:
    path = dovecot_peer.add_message("dave@example.test", MESSAGE)
    mail = pwd.getpwnam("mail")
    assert (path.stat().st_uid, path.stat().st_gid) == (mail.pw_uid, mail.pw_gid)
    assert path.parent.parent.stat().st_uid == mail.pw_uid


def test_a_dovecot_that_cannot_start_fails_with_its_log(
    tmp_path: Path, sandbox_process: SandboxProcess
) -> None:
    broken = tmp_path / "authserver"
    shutil.copytree(sandbox_process.ready.ca_file.parent, broken)
    (broken / "server-key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(DovecotError) as caught:
        start_dovecot(broken, timeout=3)
    assert "Couldn't parse private SSL key" in str(caught.value)
