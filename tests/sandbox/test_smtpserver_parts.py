"""The sandbox mail servers' parts, without a server: the SASL blob parsers, the SMTP knobs,
and RFC 7662 introspection against the sandbox authorization server."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_support import DEFAULT_USER, Sandbox
from smtpserver_support import sandbox_access_token
from tokenpost.errors import RemoteProtocolError, ValidationError
from tokenpost.secret import Secret
from tokenpost_sandbox.introspect import AuthserverReady, check_token
from tokenpost_sandbox.smtpknobs import parse_knobs
from tokenpost_sandbox.smtpsasl import parse_oauthbearer, parse_xoauth2


@pytest.fixture
def alices_token(sandbox: Sandbox) -> str:
    return sandbox_access_token(sandbox, DEFAULT_USER)


def test_xoauth2_parser_reads_the_microsoft_doc_vector() -> None:
    blob = base64.b64decode(
        "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0oz"
        "VmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
    )
    parsed = parse_xoauth2(blob)
    assert parsed is not None
    assert parsed[0] == "test@contoso.onmicrosoft.com"
    assert parsed[1] == Secret("EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"user=a@b\x01auth=Bearer t\x01",  # one trailing ^A
        b"user=\x01auth=Bearer t\x01\x01",  # empty user
        b"user=a@b\x01auth=Basic t\x01\x01",
        b"user=a@b\x01auth=Bearer \x01\x01",
        b"auth=Bearer t\x01user=a@b\x01\x01",
        b"user=a@b\x01auth=Bearer t\x01x=y\x01\x01",
        b"user=a@b\x01auth=Bearer t t\x01\x01",
        b"user=\xff\x01auth=Bearer t\x01\x01",
    ],
)
def test_xoauth2_parser_refuses_malformed_blobs(blob: bytes) -> None:
    assert parse_xoauth2(blob) is None


def test_oauthbearer_parser_reads_the_rfc7628_example() -> None:
    blob = (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=587\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    assert parse_oauthbearer(blob) == (
        "user@example.com",
        Secret("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="),
    )
    assert parse_oauthbearer(b"n,a=a=2Cb=3Dc,\x01auth=bearer T\x01\x01") == ("a,b=c", Secret("T"))
    assert parse_oauthbearer(b"n,,\x01auth=Bearer T\x01\x01") == (None, Secret("T"))


@pytest.mark.parametrize(
    "blob",
    [
        b"n,user=a@b,\x01auth=Bearer t\x01\x01",  # the RFC's own malformed failure example
        b"p=tls-unique,,\x01auth=Bearer t\x01\x01",
        b"n,a=,\x01auth=Bearer t\x01\x01",
        b"n,a=x=41,\x01auth=Bearer t\x01\x01",
        b"n,,\x01host=h\x01\x01",
        b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01",
        b"n,,\x01auth=Bearer t\x01",
        b"n,,auth=Bearer t\x01\x01",
    ],
)
def test_oauthbearer_parser_refuses_malformed_blobs(blob: bytes) -> None:
    assert parse_oauthbearer(blob) is None


PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
B64TOKEN = st.sampled_from(string.ascii_letters + string.digits + "-._~+/=")


@given(user=st.text(PRINTABLE, min_size=1, max_size=40), token=st.text(B64TOKEN, min_size=1))
def test_xoauth2_parser_round_trips(user: str, token: str) -> None:
    blob = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    assert parse_xoauth2(blob) == (user, Secret(token))


@given(user=st.text(PRINTABLE, min_size=1, max_size=40), token=st.text(B64TOKEN, min_size=1))
def test_oauthbearer_parser_round_trips_escaped_authzids(user: str, token: str) -> None:
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    blob = f"n,a={authzid},\x01host=h\x01port=587\x01auth=Bearer {token}\x01\x01".encode()
    assert parse_oauthbearer(blob) == (user, Secret(token))


@given(st.binary(max_size=300))
def test_parsers_never_raise(blob: bytes) -> None:
    for parse in (parse_xoauth2, parse_oauthbearer):
        parsed = parse(blob)
        assert parsed is None or isinstance(parsed[1], Secret)


def test_knobs_report_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_knobs({"style": "yahoo", "policy": {"a@b": "planet"}, "drop_after_data_bytes": -1})
    assert {p.field for p in caught.value.problems} == {"style", "policy", "drop_after_data_bytes"}
    knobs = parse_knobs({"passwords": {"Carol@Example.test": "pw"}, "reject_rcpt": ["X@Y.test"]})
    assert knobs.password_of("carol@example.TEST") == Secret("pw")
    assert knobs.rejects("x@y.test")
    assert "pw" not in repr(knobs)


async def test_check_token_asks_the_authorization_server(
    sandbox: Sandbox, alices_token: str
) -> None:
    authserver = AuthserverReady.load(sandbox.ca_file.parent)
    assert await check_token(authserver, DEFAULT_USER, Secret(alices_token))
    assert await check_token(authserver, DEFAULT_USER.title(), Secret(alices_token))
    assert not await check_token(authserver, "bob@example.test", Secret(alices_token))
    assert not await check_token(authserver, DEFAULT_USER, Secret("sbx_at_unknown"))
    sandbox.control.revoke_user(DEFAULT_USER)
    assert not await check_token(authserver, DEFAULT_USER, Secret(alices_token))


async def test_check_token_reports_a_broken_answer_without_the_token(
    sandbox: Sandbox, alices_token: str
) -> None:
    authserver = AuthserverReady.load(sandbox.ca_file.parent)
    sandbox.control.fault("introspect", "non_json")
    with pytest.raises(RemoteProtocolError) as caught:
        await check_token(authserver, DEFAULT_USER, Secret(alices_token))
    assert alices_token not in str(caught.value)
    assert repr(authserver).count(authserver.client_secret.reveal()) == 0
