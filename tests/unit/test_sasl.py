"""SASL clients: vendor and RFC vectors, error challenges, line limits, and what never leaks."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import RemoteProtocolError, ValidationError
from tokenpost.sasl import (
    MAX_CHALLENGE,
    POP3_COMMAND_LIMIT,
    SMTP_COMMAND_LIMIT,
    ErrorChallenge,
    SaslClient,
    apop_digest,
    auth_command,
    login,
    oauthbearer,
    plain,
    xoauth2,
)
from tokenpost.secret import Secret

# Microsoft, "Authenticate an IMAP, POP or SMTP connection using OAuth"
MS_USER = "test@contoso.onmicrosoft.com"
MS_TOKEN = "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"
MS_BLOB = (
    "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0oz"
    "VmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
)
# Google, "OAuth 2.0 Mechanism" (XOAUTH2)
G_USER = "someuser@example.com"
G_TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
G_BLOB = (
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhk"
    "SFJoZG1semRHRXVZMjl0Q2cBAQ=="
)
# Google's documented error challenge (ends in a newline) and what Gmail sends today
G_DOC_ERROR = (
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2ds"
    "ZS5jb20vIn0K"
)
G_REAL_ERROR = (
    "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNv"
    "bS8ifQ=="
)
# RFC 7628 §4.3 (IMAP failure)
RFC7628_ERROR = (
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3Vy"
    "YXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWcifQ=="
)
RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="

# Printable text, as settings and providers hand it over (no control characters)
PRINTABLE = st.text(st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" "))
# RFC 6750 b64token: the shape of every real access token
B64TOKEN = st.from_regex(r"[A-Za-z0-9\-._~+/]{16,200}={0,2}", fullmatch=True)


def _b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


def _unb64(secret: Secret) -> bytes:
    return base64.b64decode(secret.reveal(), validate=True)


def _token_of(length: int) -> Secret:
    return Secret("T" * length)


def _xoauth2_sized(line_length: int, user: str = "u@example.com") -> SaslClient:
    """An XOAUTH2 client whose inline AUTH line is exactly `line_length` characters."""
    encoded = line_length - len("AUTH XOAUTH2 ")
    assert encoded % 4 == 0
    raw = encoded // 4 * 3  # the longest message that encodes to `encoded` characters
    return xoauth2(user, _token_of(raw - len(f"user={user}\x01auth=Bearer \x01\x01")))


def _pair_clients(token: Secret) -> list[SaslClient]:
    return [xoauth2("u@example.com", token), oauthbearer("u@example.com", token, "h", 587)]


# -- vectors -----------------------------------------------------------------------------------


def test_xoauth2_matches_microsofts_vector() -> None:
    client = xoauth2(MS_USER, Secret(MS_TOKEN))
    assert client.mechanism == "XOAUTH2"
    assert client.initial_response() == Secret(MS_BLOB)


def test_xoauth2_matches_googles_vector() -> None:
    assert xoauth2(G_USER, Secret(G_TOKEN)).initial_response() == Secret(G_BLOB)


def test_oauthbearer_matches_the_rfc_7628_smtp_example() -> None:
    client = oauthbearer("user@example.com", Secret(RFC7628_TOKEN), "server.example.com", 587)
    response = client.initial_response()
    assert client.mechanism == "OAUTHBEARER"
    assert response is not None
    assert _unb64(response) == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=587"
        b"\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


@pytest.mark.parametrize(
    ("user", "header"),
    [
        ("a,b@example.com", b"n,a=a=2Cb@example.com,"),
        ("a=b@example.com", b"n,a=a=3Db@example.com,"),
        ("=2C,", b"n,a==3D2C=2C,"),
        ("", b"n,,"),
    ],
)
def test_oauthbearer_escapes_the_gs2_authzid(user: str, header: bytes) -> None:
    response = oauthbearer(user, Secret("tok"), "h", 25).initial_response()
    assert response is not None
    assert _unb64(response).split(b"\x01")[0] == header


def test_plain_is_rfc_4616_without_authzid() -> None:
    client = plain("tim", Secret("tanstaaftanstaaf"))
    assert client.mechanism == "PLAIN"
    assert client.initial_response() == Secret(_b64("\0tim\0tanstaaftanstaaf"))


def test_apop_digest_matches_rfc_1939() -> None:
    digest = apop_digest("<1896.697170952@dbc.mtview.ca.us>", Secret("tanstaaf"))
    assert digest == Secret("c4c9334bac560ecc979e58001b3e22fb")


@pytest.mark.parametrize(
    "timestamp", ["1896.697170952@dbc", "<>", "<a b>", "<a\r\n>", "<a>x", "<" + "a" * 501 + ">"]
)
def test_apop_refuses_a_malformed_timestamp(timestamp: str) -> None:
    with pytest.raises(RemoteProtocolError, match="APOP timestamp"):
        apop_digest(timestamp, Secret("tanstaaf"))


# -- LOGIN -------------------------------------------------------------------------------------


def test_login_answers_username_then_password() -> None:
    client = login("tim", Secret("tanstaaf"))
    line, inline = auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)
    assert (line.reveal(), inline) == ("AUTH LOGIN", False)
    assert client.initial_response() is None
    assert client.respond("VXNlcm5hbWU6") == Secret(_b64("tim"))  # "Username:"
    assert client.respond("UGFzc3dvcmQ6") == Secret(_b64("tanstaaf"))  # "Password:"
    with pytest.raises(RemoteProtocolError, match="after the last answer"):
        client.respond("UGFzc3dvcmQ6")


def test_login_follows_the_prompt_text_not_the_order() -> None:
    client = login("tim", Secret("tanstaaf"))
    assert client.respond(_b64("password:")) == Secret(_b64("tanstaaf"))
    assert client.respond(_b64("User Name\0")) == Secret(_b64("tim"))


def test_login_answers_unknown_prompts_by_order() -> None:
    client = login("tim", Secret("tanstaaf"))
    assert client.respond(_b64("Who are you?")) == Secret(_b64("tim"))
    assert client.respond("") == Secret(_b64("tanstaaf"))


def test_login_refuses_a_repeated_prompt() -> None:
    client = login("tim", Secret("tanstaaf"))
    client.respond("VXNlcm5hbWU6")
    with pytest.raises(RemoteProtocolError, match="asked for the user name twice"):
        client.respond("VXNlcm5hbWU6")


# -- error challenges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        (G_REAL_ERROR, ErrorChallenge("400", "https://mail.google.com/")),
        (G_DOC_ERROR, ErrorChallenge("401", "https://mail.google.com/")),
    ],
)
def test_xoauth2_acknowledges_googles_error_challenge(
    challenge: str, expected: ErrorChallenge
) -> None:
    client = xoauth2(G_USER, Secret(G_TOKEN))
    line, inline = auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)
    assert (line.reveal(), inline) == (f"AUTH XOAUTH2 {G_BLOB}", True)
    assert client.error is None
    assert client.respond(challenge) == Secret("")
    assert client.error == expected


def test_oauthbearer_acknowledges_the_rfc_7628_error_challenge() -> None:
    client = oauthbearer("user@example.com", Secret(RFC7628_TOKEN), "server.example.com", 993)
    client.initial_response()
    assert client.respond(RFC7628_ERROR) == Secret("AQ==")
    assert client.error == ErrorChallenge(
        status="invalid_token",
        scope="example_scope",
        openid_configuration="https://example.com/.well-known/openid-config",
    )


@pytest.mark.parametrize(("mechanism", "ack"), [("XOAUTH2", ""), ("OAUTHBEARER", "AQ==")])
def test_two_step_sends_the_blob_on_the_empty_challenge(mechanism: str, ack: str) -> None:
    client = {c.mechanism: c for c in _pair_clients(_token_of(3000))}[mechanism]
    line, inline = auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)
    assert (line.reveal(), inline) == (f"AUTH {mechanism}", False)
    blob = client.respond("")
    assert b"auth=Bearer " + b"T" * 3000 + b"\x01\x01" in _unb64(blob)
    assert client.respond(G_REAL_ERROR) == Secret(ack)
    assert client.error is not None
    assert client.error.status == "400"


@pytest.mark.parametrize(
    "payload",
    [b"", b"oops", b"\xff\xfe not utf-8", b"[1, 2]", b'{"scope": "s"}', b"[" * 5000],
    ids=["empty", "text", "binary", "list", "no-status", "deep"],
)
@pytest.mark.parametrize(("mechanism", "ack"), [("XOAUTH2", ""), ("OAUTHBEARER", "AQ==")])
def test_an_unreadable_error_challenge_is_still_acknowledged(
    payload: bytes, mechanism: str, ack: str
) -> None:
    client = {c.mechanism: c for c in _pair_clients(Secret("tok"))}[mechanism]
    client.initial_response()
    assert client.respond(_b64(payload)) == Secret(ack)
    assert client.error is not None
    assert client.error.status == ""


def test_error_challenge_fields_are_made_safe_to_show() -> None:
    body = {"status": 401, "scope": "a\x1b[31mb\nsecond line", "openid-configuration": "x" * 999}
    client = xoauth2("u", Secret("tok"))
    client.initial_response()
    client.respond(_b64(json.dumps(body)))
    assert client.error == ErrorChallenge("401", "a[31mb", "x" * 200)


def test_a_challenge_after_the_acknowledgement_is_a_protocol_error() -> None:
    client = xoauth2(G_USER, Secret(G_TOKEN))
    client.initial_response()
    client.respond(G_REAL_ERROR)
    with pytest.raises(RemoteProtocolError, match="after the last answer"):
        client.respond("")


def test_plain_has_no_error_challenge() -> None:
    client = plain("tim", Secret("pw"))
    client.initial_response()
    with pytest.raises(RemoteProtocolError, match="after the last answer"):
        client.respond("")


def test_a_non_empty_first_challenge_is_a_protocol_error() -> None:
    client = xoauth2(G_USER, Secret(G_TOKEN))
    with pytest.raises(RemoteProtocolError, match="first challenge was not empty"):
        client.respond(G_REAL_ERROR)


def test_the_initial_response_is_handed_out_once() -> None:
    client = xoauth2(G_USER, Secret(G_TOKEN))
    client.initial_response()
    with pytest.raises(RuntimeError, match="already sent"):
        client.initial_response()


def test_the_challenge_size_is_bounded() -> None:
    at_limit = _b64(b"x" * (MAX_CHALLENGE // 4 * 3))
    assert len(at_limit) == MAX_CHALLENGE
    client = xoauth2("u", Secret("tok"))
    client.initial_response()
    assert client.respond(at_limit) == Secret("")
    over = xoauth2("u", Secret("tok"))
    over.initial_response()
    with pytest.raises(RemoteProtocolError, match=f"longer than {MAX_CHALLENGE}"):
        over.respond(_b64(b"x" * (MAX_CHALLENGE // 4 * 3 + 1)))


@pytest.mark.parametrize("challenge", ["not base64!", "QQ", "Zm9v\x00", "Zm9vé===", "=Zm9v"])
def test_a_challenge_that_is_not_base64_is_a_protocol_error(challenge: str) -> None:
    client = oauthbearer("u", Secret("tok"), "h", 587)
    client.initial_response()
    with pytest.raises(RemoteProtocolError, match="not base64") as caught:
        client.respond(challenge)
    assert challenge.strip() not in str(caught.value)


def test_surrounding_line_whitespace_is_tolerated() -> None:
    client = xoauth2(G_USER, Secret(G_TOKEN))
    assert client.respond(" \r\n") == Secret(G_BLOB)
    assert client.respond(G_REAL_ERROR + "\r\n") == Secret("")


# -- the AUTH line -----------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "inline"), [(510, False), (511, True), (512, True)])
def test_smtp_line_limit_counts_crlf(limit: int, inline: bool) -> None:
    client = _xoauth2_sized(509)  # 511 octets with CRLF
    line, was_inline = auth_command("AUTH", client, limit=limit)
    assert was_inline is inline
    assert len(line) == (509 if inline else len("AUTH XOAUTH2"))


def test_smtp_line_one_octet_over_goes_two_step() -> None:
    user = "tim"
    password = Secret("p" * (375 - len("\0tim\0")))  # 500 base64 characters
    client = plain(user, password)
    line, inline = auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)  # 511 + CRLF = 513
    assert (line.reveal(), inline) == ("AUTH PLAIN", False)
    assert client.respond("") == Secret(_b64("\0tim\0" + password.reveal()))
    line, inline = auth_command("AUTH", plain(user, password), limit=513)
    assert (len(line), inline) == (511, True)


@pytest.mark.parametrize(("length", "inline"), [(253, True), (257, False)])
def test_pop3_line_limit_is_255_with_crlf(length: int, inline: bool) -> None:
    line, was_inline = auth_command("AUTH", _xoauth2_sized(length), limit=POP3_COMMAND_LIMIT)
    assert was_inline is inline
    assert len(line) == (length if inline else len("AUTH XOAUTH2"))


@pytest.mark.parametrize("limit", [SMTP_COMMAND_LIMIT, POP3_COMMAND_LIMIT])
def test_realistic_tokens_go_two_step(limit: int) -> None:
    for client in _pair_clients(_token_of(1500)):
        line, inline = auth_command("AUTH", client, limit=limit)
        assert not inline
        assert "T" * 20 not in line.reveal()
        assert b"T" * 1500 in _unb64(client.respond(""))


def test_an_inline_blob_is_not_sent_again_on_an_empty_challenge() -> None:
    client = xoauth2(G_USER, Secret(G_TOKEN))
    auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)
    assert client.respond("") == Secret("")
    assert client.error == ErrorChallenge(status="")


def test_a_zero_length_initial_response_is_an_equals_sign() -> None:
    class _EmptyInitialResponse(SaslClient):
        def initial_response(self) -> Secret:
            return Secret("")

        def respond(self, challenge: str) -> Secret:
            raise AssertionError("not reached")

        def _inline(self, room: int) -> Secret | None:
            return self.initial_response() if room >= 1 else None

    line, inline = auth_command("AUTH", _EmptyInitialResponse("EXTERNAL"), limit=512)
    assert (line.reveal(), inline) == ("AUTH EXTERNAL =", True)


@given(limit=st.integers(0, 700), token=st.integers(1, 400))
def test_inline_exactly_when_line_and_crlf_fit(limit: int, token: int) -> None:
    blob = xoauth2("u@example.com", _token_of(token)).initial_response()
    assert blob is not None
    full = len("AUTH XOAUTH2 ") + len(blob)
    client = xoauth2("u@example.com", _token_of(token))
    line, inline = auth_command("AUTH", client, limit=limit)
    assert inline is (full + 2 <= limit)
    assert len(line) == (full if inline else len("AUTH XOAUTH2"))


# -- inputs that would break the framing -------------------------------------------------------


def test_a_token_with_control_characters_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="access token") as caught:
        xoauth2("u", Secret("abc\x01user=evil"))
    assert "evil" not in str(caught.value)
    with pytest.raises(RemoteProtocolError):
        oauthbearer("u", Secret("abc\ud800"), "h", 25)


@pytest.mark.parametrize(
    "build",
    [
        lambda: xoauth2("u\x01", Secret("t")),
        lambda: oauthbearer("u", Secret("t"), "h\x01port=1", 25),
        lambda: oauthbearer("u", Secret("t"), "h", 0),
        lambda: plain("u", Secret("a\0b")),
        lambda: login("u\ud800", Secret("p")),
    ],
    ids=["user", "host", "port", "nul", "surrogate"],
)
def test_settings_that_break_the_framing_are_refused(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


# -- properties --------------------------------------------------------------------------------


@given(user=PRINTABLE, token=PRINTABLE.filter(bool))
def test_xoauth2_blob_splits_back_into_its_inputs(user: str, token: str) -> None:
    response = xoauth2(user, Secret(token)).initial_response()
    assert response is not None
    first, second, *rest = _unb64(response).decode().split("\x01")
    assert (first, second, rest) == (f"user={user}", f"auth=Bearer {token}", ["", ""])


@given(user=PRINTABLE, token=PRINTABLE.filter(bool), host=PRINTABLE, port=st.integers(1, 65535))
def test_oauthbearer_blob_splits_back_into_its_inputs(
    user: str, token: str, host: str, port: int
) -> None:
    response = oauthbearer(user, Secret(token), host, port).initial_response()
    assert response is not None
    header, *pairs = _unb64(response).decode().split("\x01")
    assert pairs == [f"host={host}", f"port={port}", f"auth=Bearer {token}", "", ""]
    match = re.fullmatch(r"n,(?:a=([^,]*))?,", header)
    assert match is not None
    escaped = match.group(1) or ""
    assert re.sub(r"=(2C|3D)", lambda m: {"2C": ",", "3D": "="}[m.group(1)], escaped) == user


@given(
    token=B64TOKEN,
    two_step=st.booleans(),
    challenges=st.lists(st.binary(max_size=64), min_size=1, max_size=4),
)
def test_nothing_after_the_initial_response_carries_the_token(
    token: str, two_step: bool, challenges: list[bytes]
) -> None:
    for client in _pair_clients(Secret(token)):
        first = client.respond("") if two_step else client.initial_response()
        assert first is not None
        assert token.encode() in _unb64(first)
        error_challenge, *more = challenges
        assert client.respond(_b64(error_challenge)).reveal() in ("", "AQ==")
        for challenge in more:
            with pytest.raises(RemoteProtocolError) as caught:
                client.respond(_b64(challenge))
            assert token not in str(caught.value)


@given(token=B64TOKEN, garbage=st.text(min_size=1, max_size=40))
def test_protocol_errors_never_quote_the_challenge(token: str, garbage: str) -> None:
    client = xoauth2("u", Secret(token))
    client.initial_response()
    with pytest.raises(RemoteProtocolError) as caught:
        client.respond(f"{token}!{garbage}")  # "!" is outside the base64 alphabet
    assert token not in str(caught.value)


@given(user=PRINTABLE, secret=B64TOKEN)
def test_repr_and_str_show_the_mechanism_only(user: str, secret: str) -> None:
    clients = [
        xoauth2(user, Secret(secret)),
        oauthbearer(user, Secret(secret), "h", 587),
        plain(user, Secret(secret)),
        login(user, Secret(secret)),
    ]
    for client in clients:
        expected = f"SaslClient(mechanism={client.mechanism!r})"
        assert repr(client) == str(client) == expected
        assert secret not in repr(client)
