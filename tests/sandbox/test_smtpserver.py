"""The sandbox SMTP submission server, driven by the standard library's smtplib (protocols.md §4.4).

Tokens are real: issued by the sandbox authorization server and checked there by introspection.
Each test proves a behaviour tokenpost's SMTP tests rely on: both listeners, both mechanisms in
both forms, the providers' failure replies byte for byte, policy refusals, long tokens, and what
is stored for a message.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox_support import DEFAULT_USER, Sandbox
from smtpserver_support import SmtpSandbox, sandbox_access_token, start_smtp_sandbox

MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n"
GOOGLE_ERROR = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
MICROSOFT_FAILURE = b"5.7.3 Authentication unsuccessful [smtp.sandbox.test]"
GOOGLE_FAILURE = (
    b"5.7.8 Username and Password not accepted. Learn more at\n"
    b"5.7.8  https://support.google.com/mail/?p=BadCredentials sbx - gsmtp"
)
Responder = Callable[..., str]


# --- helpers ----------------------------------------------------------------------------------


def xoauth2(user: str, token: str, seen: list[bytes | None] | None = None) -> Responder:
    """smtplib authobject: the blob for the initial response or an empty `334 `, else ""."""

    def respond(challenge: bytes | None = None) -> str:
        if seen is not None:
            seen.append(challenge)
        return f"user={user}\x01auth=Bearer {token}\x01\x01" if not challenge else ""

    return respond


def oauthbearer(user: str | None, token: str, seen: list[bytes | None] | None = None) -> Responder:
    """RFC 7628 §3.1 client response; %x01 answers an error challenge (§3.2.3)."""
    authzid = "" if user is None else "a=" + user.replace("=", "=3D").replace(",", "=2C")

    def respond(challenge: bytes | None = None) -> str:
        if seen is not None:
            seen.append(challenge)
        if challenge:
            return "\x01"
        return f"n,{authzid},\x01host=127.0.0.1\x01port=587\x01auth=Bearer {token}\x01\x01"

    return respond


@contextmanager
def starttls(peer: SmtpSandbox) -> Iterator[smtplib.SMTP]:
    with smtplib.SMTP(peer.host, peer.ready.starttls_port, timeout=10) as smtp:
        smtp.starttls(context=peer.ready.tls_context())
        smtp.ehlo()
        yield smtp


@contextmanager
def implicit_tls(peer: SmtpSandbox) -> Iterator[smtplib.SMTP]:
    context = peer.ready.tls_context()
    with smtplib.SMTP_SSL(peer.host, peer.ready.tls_port, context=context, timeout=10) as smtp:
        smtp.ehlo()
        yield smtp


def auth_error(
    smtp: smtplib.SMTP, mechanism: str, responder: Responder, **kw: bool
) -> tuple[int, bytes]:
    """The (code, text) of a refused AUTH."""
    with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        smtp.auth(mechanism, responder, **kw)
    text = caught.value.smtp_error
    assert isinstance(text, bytes)
    return caught.value.smtp_code, text


@pytest.fixture
def token(sandbox: Sandbox) -> str:
    return sandbox_access_token(sandbox, DEFAULT_USER)


# --- XOAUTH2 and OAUTHBEARER --------------------------------------------------------------------


@pytest.mark.parametrize("initial_response_ok", [True, False], ids=["one-line", "two-step"])
def test_xoauth2_with_a_sandbox_token(
    smtp_peer: SmtpSandbox, token: str, initial_response_ok: bool
) -> None:
    seen: list[bytes | None] = []
    with starttls(smtp_peer) as smtp:
        reply = smtp.auth(
            "XOAUTH2", xoauth2(DEFAULT_USER, token, seen), initial_response_ok=initial_response_ok
        )
    assert reply == (235, b"2.7.0 Accepted")
    # Two-step: smtplib saw the empty `334 ` challenge before sending the blob.
    assert seen == ([None] if initial_response_ok else [b""])
    assert smtp_peer.auth_count("XOAUTH2", "success") == 1


@pytest.mark.parametrize("initial_response_ok", [True, False], ids=["one-line", "two-step"])
@pytest.mark.parametrize("authzid", [DEFAULT_USER, None], ids=["authzid", "no-authzid"])
def test_oauthbearer_with_a_sandbox_token(
    smtp_peer: SmtpSandbox, token: str, initial_response_ok: bool, authzid: str | None
) -> None:
    with starttls(smtp_peer) as smtp:
        reply = smtp.auth(
            "OAUTHBEARER", oauthbearer(authzid, token), initial_response_ok=initial_response_ok
        )
        smtp.sendmail(DEFAULT_USER, ["bob@example.test"], MESSAGE)
    assert reply[0] == 235
    (message,) = smtp_peer.messages()
    assert message.envelope["auth_user"] == DEFAULT_USER
    assert message.envelope["mechanism"] == "OAUTHBEARER"


def test_lowercase_two_step_as_in_microsofts_transcript(smtp_peer: SmtpSandbox, token: str) -> None:
    smtp_peer.set_knobs(style="microsoft")
    blob = base64.b64encode(xoauth2(DEFAULT_USER, token)().encode()).decode()
    with starttls(smtp_peer) as smtp:
        assert smtp.docmd("auth", "xoauth2") == (334, b"")
        assert smtp.docmd(blob) == (235, b"2.7.0 Authentication successful")


def test_the_user_is_compared_case_insensitively(smtp_peer: SmtpSandbox, token: str) -> None:
    with starttls(smtp_peer) as smtp:
        assert smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER.upper(), token))[0] == 235


def test_a_token_of_another_user_is_refused(sandbox: Sandbox, smtp_peer: SmtpSandbox) -> None:
    bobs = sandbox_access_token(sandbox, "bob@example.test")
    with starttls(smtp_peer) as smtp:
        code, _ = auth_error(smtp, "XOAUTH2", xoauth2(DEFAULT_USER, bobs))
    assert code == 535
    assert smtp_peer.auth_count("XOAUTH2", "failure") == 1


# --- failure replies, byte for byte ------------------------------------------------------------


@pytest.mark.parametrize("initial_response_ok", [True, False], ids=["one-line", "two-step"])
def test_google_style_wrong_token_gets_the_json_challenge_then_535(
    smtp_peer: SmtpSandbox, sandbox: Sandbox, initial_response_ok: bool
) -> None:
    seen: list[bytes | None] = []
    with starttls(smtp_peer) as smtp:
        responder = xoauth2(DEFAULT_USER, "sbx_at_wrong", seen)
        code, text = auth_error(smtp, "XOAUTH2", responder, initial_response_ok=initial_response_ok)
        # The session survives the failure.
        assert smtp.noop()[0] == 250
    assert json.loads(seen[-1] or b"") == GOOGLE_ERROR
    assert (code, text) == (535, GOOGLE_FAILURE)


def test_google_style_oauthbearer_error_challenge_is_rfc7628(
    smtp_peer: SmtpSandbox, sandbox: Sandbox
) -> None:
    seen: list[bytes | None] = []
    with starttls(smtp_peer) as smtp:
        code, _ = auth_error(smtp, "OAUTHBEARER", oauthbearer(DEFAULT_USER, "sbx_at_no", seen))
    assert json.loads(seen[-1] or b"")["status"] == "invalid_token"
    assert code == 535


def test_microsoft_style_wrong_token_gets_535_5_7_3_without_a_challenge(
    smtp_peer: SmtpSandbox, sandbox: Sandbox
) -> None:
    smtp_peer.set_knobs(style="microsoft")
    seen: list[bytes | None] = []
    with starttls(smtp_peer) as smtp:
        code, text = auth_error(smtp, "XOAUTH2", xoauth2(DEFAULT_USER, "sbx_at_wrong", seen))
    assert seen == [None]
    assert (code, text) == (535, MICROSOFT_FAILURE)


def test_microsoft_style_advertises_login_and_xoauth2_only(
    smtp_peer: SmtpSandbox, token: str
) -> None:
    smtp_peer.set_knobs(style="microsoft")
    address = (smtp_peer.host, smtp_peer.ready.starttls_port)
    with socket.create_connection(address, 10) as raw, raw.makefile("rb") as stream:
        greeting = stream.readline()
    assert greeting.startswith(b"220 smtp.sandbox.test Microsoft ESMTP MAIL Service ready at ")
    with smtplib.SMTP(smtp_peer.host, smtp_peer.ready.starttls_port, timeout=10) as smtp:
        smtp.ehlo()
        assert "auth" not in smtp.esmtp_features
        smtp.starttls(context=smtp_peer.ready.tls_context())
        smtp.ehlo()
        assert smtp.esmtp_features["auth"] == " LOGIN XOAUTH2"
        code, text = smtp.docmd("AUTH", "OAUTHBEARER")
        assert (code, text) == (504, b"5.7.4 Unrecognized authentication type [smtp.sandbox.test]")
        assert smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token)) == (
            235,
            b"2.7.0 Authentication successful",
        )


def test_a_revoked_user_is_refused_at_once(
    smtp_peer: SmtpSandbox, sandbox: Sandbox, token: str
) -> None:
    with starttls(smtp_peer) as smtp:
        assert smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token))[0] == 235
    assert sandbox.control.revoke_user(DEFAULT_USER) == 1
    with starttls(smtp_peer) as smtp:
        code, _ = auth_error(smtp, "XOAUTH2", xoauth2(DEFAULT_USER, token))
    assert code == 535
    assert smtp_peer.stats()["auth"]["XOAUTH2"] == {"success": 1, "failure": 1}


BLOCK_LINES = {
    "tenant": b"5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    b"Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [smtp.sandbox.test]",
    "mailbox": b"5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the"
    b" Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
    "security_defaults": b"5.7.139 Authentication unsuccessful, user is locked by your "
    b"organization's security defaults policy. Contact your administrator.",
}


@pytest.mark.parametrize("block", sorted(BLOCK_LINES))
def test_policy_knob_refuses_a_valid_token_with_5_7_139(
    smtp_peer: SmtpSandbox, sandbox: Sandbox, token: str, block: str
) -> None:
    smtp_peer.set_knobs(style="microsoft", policy={DEFAULT_USER: block})
    bobs = sandbox_access_token(sandbox, "bob@example.test")
    with starttls(smtp_peer) as smtp:
        assert auth_error(smtp, "XOAUTH2", xoauth2(DEFAULT_USER, token)) == (
            535,
            BLOCK_LINES[block],
        )
    with starttls(smtp_peer) as smtp:  # other accounts are not affected
        assert smtp.auth("XOAUTH2", xoauth2("bob@example.test", bobs))[0] == 235
    assert smtp_peer.auth_count("XOAUTH2", "policy") == 1


def test_introspection_outage_is_a_temporary_failure(
    smtp_peer: SmtpSandbox, sandbox: Sandbox, token: str
) -> None:
    sandbox.control.fault("introspect", "http_503")
    with starttls(smtp_peer) as smtp:
        code, text = auth_error(smtp, "XOAUTH2", xoauth2(DEFAULT_USER, token))
        assert (code, text) == (454, b"4.7.0 Temporary authentication failure")
        assert smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token))[0] == 235  # fault was one-shot


def test_cancel_and_bad_base64_follow_rfc4954(smtp_peer: SmtpSandbox) -> None:
    with starttls(smtp_peer) as smtp:
        assert smtp.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert smtp.docmd("*") == (501, b"5.7.0 Auth aborted")
        assert smtp.docmd("AUTH", "XOAUTH2 not!base64") == (501, b"5.5.2 Can't decode base64")
    assert smtp_peer.auth_count("XOAUTH2", "aborted") == 2


# --- TLS ---------------------------------------------------------------------------------------


def test_auth_before_starttls_is_refused(smtp_peer: SmtpSandbox, token: str) -> None:
    with smtplib.SMTP(smtp_peer.host, smtp_peer.ready.starttls_port, timeout=10) as smtp:
        smtp.ehlo()
        assert "starttls" in smtp.esmtp_features
        assert "auth" not in smtp.esmtp_features
        blob = base64.b64encode(xoauth2(DEFAULT_USER, token)().encode()).decode()
        code, _ = smtp.docmd("AUTH", f"XOAUTH2 {blob}")
        assert code == 538
        assert smtp.docmd("MAIL", "FROM:<alice@example.test>")[0] == 530
    assert smtp_peer.stats()["auth"] == {}


def test_certificate_is_verified_against_the_sandbox_ca(smtp_peer: SmtpSandbox) -> None:
    foreign = ssl.create_default_context()  # system CAs only: the sandbox CA is not among them
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(smtp_peer.host, smtp_peer.ready.tls_port, context=foreign, timeout=10)


@pytest.mark.parametrize("listener", ["starttls", "tls"])
def test_message_is_stored_with_its_envelope(
    smtp_peer: SmtpSandbox, token: str, listener: str
) -> None:
    session = starttls if listener == "starttls" else implicit_tls
    with session(smtp_peer) as smtp:
        smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token))
        refused = smtp.sendmail(
            "alice@example.test", ["bob@example.test", "carol@example.test"], MESSAGE
        )
    assert refused == {}
    (message,) = smtp_peer.messages()
    assert message.content == MESSAGE
    assert message.envelope == {
        "mail_from": "alice@example.test",
        "mail_options": [f"SIZE={len(MESSAGE)}"],  # smtplib uses the advertised SIZE
        "rcpt_tos": ["bob@example.test", "carol@example.test"],
        "auth_user": DEFAULT_USER,
        "mechanism": "XOAUTH2",
        "listener": listener,
        "size": len(MESSAGE),
    }
    assert smtp_peer.stats()["messages_received"] == 1
    assert smtp_peer.stats()["mail_commands"] == 1


def test_the_size_limit_knob_sets_what_is_advertised_and_enforced(
    smtp_peer: SmtpSandbox, token: str
) -> None:
    smtp_peer.set_knobs(size_limit=100)
    with implicit_tls(smtp_peer) as smtp:
        assert smtp.esmtp_features["size"] == "100"
        smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token))
        code, _text = smtp.mail("alice@example.test", ["SIZE=101"])
        assert code == 552
    smtp_peer.set_knobs(size_limit=0)
    with implicit_tls(smtp_peer) as smtp:
        assert "size" not in smtp.esmtp_features
    assert smtp_peer.stats()["mail_commands"] == 1  # counted though refused


def test_mail_without_auth_is_refused(smtp_peer: SmtpSandbox) -> None:
    with implicit_tls(smtp_peer) as smtp:
        assert "auth" in smtp.esmtp_features  # implicit TLS: AUTH offered at once
        code, text = smtp.docmd("MAIL", "FROM:<alice@example.test>")
    assert (code, text) == (530, b"5.7.57 Client not authenticated to send mail.")


# --- long tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("initial_response_ok", [True, False], ids=["one-line", "two-step"])
def test_a_4_kb_token_is_accepted(smtp_peer: SmtpSandbox, initial_response_ok: bool) -> None:
    long_token = "EwB" + "x" * 4093
    smtp_peer.set_knobs(static_tokens={DEFAULT_USER: long_token})
    with starttls(smtp_peer) as smtp:
        responder = xoauth2(DEFAULT_USER, long_token)
        reply = smtp.auth("XOAUTH2", responder, initial_response_ok=initial_response_ok)
    # An unknown token of the same size is read whole and refused, not cut off as too long.
    with starttls(smtp_peer) as smtp:
        unknown = xoauth2(DEFAULT_USER, "y" * 4096)
        code, _ = auth_error(smtp, "XOAUTH2", unknown, initial_response_ok=initial_response_ok)
    assert reply[0] == 235
    assert code == 535


# --- knobs -------------------------------------------------------------------------------------


def test_passwords_knob_enables_plain_and_login(smtp_peer: SmtpSandbox) -> None:
    smtp_peer.set_knobs(passwords={"carol@example.test": "pa55"})
    with starttls(smtp_peer) as smtp:
        assert smtp.login("carol@example.test", "pa55")[0] == 235  # smtplib picks PLAIN
    with starttls(smtp_peer) as smtp:
        smtp.user, smtp.password = "carol@example.test", "pa55"
        assert smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)[0] == 235
    with starttls(smtp_peer) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        smtp.login("carol@example.test", "wrong")
    assert caught.value.smtp_code == 535
    assert smtp_peer.auth_count("PLAIN", "success") == 1
    assert smtp_peer.auth_count("LOGIN", "success") == 1


def test_basic_retired_refuses_passwords_with_5_7_30(smtp_peer: SmtpSandbox) -> None:
    smtp_peer.set_knobs(basic_retired=True, passwords={"carol@example.test": "pa55"})
    with starttls(smtp_peer) as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as caught:
        smtp.login("carol@example.test", "pa55")
    assert caught.value.smtp_code == 550
    assert (
        caught.value.smtp_error
        == b"5.7.30 Basic authentication is not supported for Client Submission."
    )


def test_reject_rcpt_knob(smtp_peer: SmtpSandbox, token: str) -> None:
    smtp_peer.set_knobs(reject_rcpt=["Nobody@Example.test"])
    with starttls(smtp_peer) as smtp:
        smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token))
        smtp.mail(DEFAULT_USER)
        code, _ = smtp.rcpt("nobody@example.test")
    assert code == 550
    assert smtp_peer.messages() == []


def test_drop_after_data_bytes_hangs_up_mid_message(smtp_peer: SmtpSandbox, token: str) -> None:
    smtp_peer.set_knobs(drop_after_data_bytes=100)
    body = MESSAGE + b"x" * 10_000 + b"\r\n"
    with starttls(smtp_peer) as smtp:
        smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token))
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.sendmail(DEFAULT_USER, ["bob@example.test"], body)
    assert smtp_peer.messages() == []
    assert smtp_peer.stats()["messages_dropped"] == 1


def test_knobs_apply_per_connection_and_reset_restores_defaults(smtp_peer: SmtpSandbox) -> None:
    smtp_peer.set_knobs(style="microsoft")
    with starttls(smtp_peer) as smtp:
        assert smtp.esmtp_features["auth"] == " LOGIN XOAUTH2"
    smtp_peer.reset()
    with starttls(smtp_peer) as smtp:
        assert smtp.esmtp_features["auth"] == " PLAIN LOGIN XOAUTH2 OAUTHBEARER"
    assert smtp_peer.stats()["connections"] == 1


def test_a_broken_knobs_file_is_reported_to_the_client(smtp_peer: SmtpSandbox) -> None:
    smtp_peer.set_knobs(style="yahoo", colour="blue")
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        smtplib.SMTP(smtp_peer.host, smtp_peer.ready.starttls_port, timeout=10)
    assert caught.value.smtp_code == 421
    assert b"colour: is not a knob" in caught.value.smtp_error
    assert b"style" in caught.value.smtp_error


def test_the_server_log_holds_no_token(smtp_peer: SmtpSandbox, token: str) -> None:
    with starttls(smtp_peer) as smtp:
        auth_error(smtp, "XOAUTH2", xoauth2(DEFAULT_USER, token + "x"))
        smtp.auth("XOAUTH2", xoauth2(DEFAULT_USER, token), initial_response_ok=False)
    log = smtp_peer.log()
    assert token not in log
    assert base64.b64encode(xoauth2(DEFAULT_USER, token)().encode()).decode() not in log


def test_the_server_stops_cleanly_with_a_client_still_connected(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    server = start_smtp_sandbox(tmp_path / "smtp", sandbox.ca_file.parent)
    try:
        with socket.create_connection((server.host, server.ready.starttls_port), 10) as idle:
            assert idle.recv(512).startswith(b"220 ")
            assert server.stop() == 0
    finally:
        server.stop()
