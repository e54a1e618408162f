"""The asyncio POP3 driver against a real Dovecot (Debian's), with real sandbox tokens that
Dovecot checks by RFC 7662 introspection."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from dovecot_support import Dovecot
from sandbox_support import Sandbox
from smtpserver_support import sandbox_access_token
from tokenpost.adapters.pop3_client import Pop3ClientConnector, Pop3ClientSession
from tokenpost.errors import MailAuthError, TlsVerifyError
from tokenpost.sasl import SaslClient, oauthbearer, xoauth2
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, PopSetting, Security

USER = "alice@example.test"
MESSAGE = (
    b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: fax\r\n\r\n"
    b"first line\r\n.starts with a dot\r\n.\r\n..two dots\r\nlast line\r\n"
)


def dovecot_setting(
    dovecot: Dovecot, security: Security, ca_file: Path | None = None
) -> PopSetting:
    port = dovecot.pop3s_port if security is Security.TLS else dovecot.pop3_port
    return PopSetting(
        name="dovecot",
        server=dovecot.host,
        port=port,
        security=security,
        check_interval=60,
        auth=AuthMethod.OAUTH2,
        deliver_to="unused",
        account=USER,
        ca_file=str(ca_file or dovecot.ca_file),
    )


async def connect(dovecot: Dovecot, security: Security) -> Pop3ClientSession:
    steps: list[str] = []
    session = await Pop3ClientConnector().connect(
        dovecot_setting(dovecot, security), timeout=10, on_step=steps.append
    )
    expected = ["connect", "tls", "greeting", "capa"]
    if security is Security.STARTTLS:
        expected = ["connect", "greeting", "capa", "starttls", "capa"]
    assert steps == expected
    return session


def mechanism(name: str, token: str, dovecot: Dovecot) -> SaslClient:
    if name == "XOAUTH2":
        return xoauth2(USER, Secret(token))
    return oauthbearer(USER, Secret(token), dovecot.host, dovecot.pop3s_port)


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
@pytest.mark.parametrize("name", ["XOAUTH2", "OAUTHBEARER"])
async def test_receive_and_delete_with_a_bearer_token(
    dovecot_peer: Dovecot, sandbox: Sandbox, security: Security, name: str
) -> None:
    dovecot_peer.add_message(USER, MESSAGE)
    token = sandbox_access_token(sandbox, USER)
    session = await connect(dovecot_peer, security)
    assert f"SASL {name}" in session.capabilities
    assert "STLS" not in session.capabilities  # asked again after TLS (or never on POP3S)
    await session.authenticate(mechanism(name, token, dovecot_peer))
    listing = await session.uidl()
    assert list(listing) == [1]
    chunks: list[bytes] = []
    assert await session.retrieve(1, chunks.append) == len(MESSAGE)
    assert b"".join(chunks) == MESSAGE
    await session.delete(1)
    await session.quit()
    assert dovecot_peer.maildir_count(USER) == 0


@pytest.mark.parametrize(("name", "status"), [("XOAUTH2", "401"), ("OAUTHBEARER", "invalid_token")])
async def test_revoked_token_is_mail_auth_error(
    dovecot_peer: Dovecot, sandbox: Sandbox, name: str, status: str
) -> None:
    token = sandbox_access_token(sandbox, USER)
    sandbox.control.revoke_user(USER)
    session = await connect(dovecot_peer, Security.TLS)
    with pytest.raises(MailAuthError) as caught:
        await session.authenticate(mechanism(name, token, dovecot_peer))
    assert caught.value.reply == "-ERR [AUTH] Authentication failed."
    assert caught.value.status == status
    assert token not in str(caught.value)
    await session.close()


async def test_certificate_of_another_ca(dovecot_peer: Dovecot, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    setting = dovecot_setting(dovecot_peer, Security.TLS, ca_file=other)
    with pytest.raises(TlsVerifyError):
        await Pop3ClientConnector().connect(setting, timeout=10)


async def test_user_pass_and_a_large_message(dovecot_peer: Dovecot) -> None:
    dovecot_peer.set_password("carol@example.test", "pw for carol")
    lines = [b".%d" % n if n % 5 == 0 else b"y" * (n % 200) for n in range(30_000)]
    big = b"Subject: big\r\n\r\n" + b"".join(line + b"\r\n" for line in lines)
    dovecot_peer.add_message("carol@example.test", big)
    session = await connect(dovecot_peer, Security.STARTTLS)
    await session.login("carol@example.test", Secret("pw for carol"))
    chunks: list[bytes] = []
    await session.retrieve(1, chunks.append)
    assert b"".join(chunks) == big
    assert len(chunks) > 1
    await session.delete(1)
    await session.close()  # no QUIT: the deletion is not committed
    assert dovecot_peer.maildir_count("carol@example.test") == 1
