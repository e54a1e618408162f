"""The POP3 client core against fixed byte vectors (protocols.md §1.12, §2.7, RFC 1939/2449)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenpost.errors import RemoteProtocolError
from tokenpost.i18n import translator
from tokenpost.pop3 import (
    NEED_DATA,
    ClientState,
    ConnectionClosed,
    Continuation,
    Err,
    Event,
    Greeting,
    LocalProtocolError,
    MultilineBody,
    MultilineEnd,
    Ok,
    Pop3Client,
)
from tokenpost.pop3.wire import LineBuffer
from tokenpost.secret import Secret
from tokenpost.text import Text

MS_GREETING = (
    b"+OK The Microsoft Exchange POP3 service is ready. [UABSADAAUABSADAANgBDAEEAMAAwADEA]\r\n"
)
MS_BLOB = (
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJo"
    "ZG1semRHRXVZMjl0Q2cBAQ=="
)
GOOGLE_ERROR = (
    "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8i"
    "fQ=="
)


def feed(client: Pop3Client, data: bytes) -> list[Event]:
    client.receive_data(data)
    return list(client.events())


def authorized(greeting: bytes = b"+OK ready\r\n") -> Pop3Client:
    client = Pop3Client()
    assert isinstance(feed(client, greeting)[0], Greeting)
    return client


def in_transaction() -> Pop3Client:
    client = authorized()
    client.send_command("USER", "alice")
    feed(client, b"+OK\r\n")
    client.send_command("PASS", Secret("pw"))
    assert feed(client, b"+OK logged in\r\n") == [Ok("logged in")]
    assert client.state is ClientState.TRANSACTION
    return client


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, MultilineBody))


# --- Exchange Online and Gmail transcripts -------------------------------------------------


def test_exchange_transcript_capa_then_two_line_xoauth2() -> None:
    client = Pop3Client()
    assert feed(client, MS_GREETING) == [
        Greeting("The Microsoft Exchange POP3 service is ready. [UABSADAAUABSADAANgBDAEEAMAAwADEA]")
    ]
    assert client.send_command("CAPA") == b"CAPA\r\n"
    events = feed(client, b"+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\n.\r\n")
    assert events == [
        Ok(""),
        MultilineBody(b"TOP\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\n"),
        MultilineEnd(),
    ]
    assert client.send_command("AUTH", "XOAUTH2") == b"AUTH XOAUTH2\r\n"
    assert feed(client, b"+ \r\n") == [Continuation("")]
    assert client.send_auth_response(Secret(MS_BLOB)) == MS_BLOB.encode() + b"\r\n"
    assert feed(client, b"+OK User successfully authenticated.\r\n") == [
        Ok("User successfully authenticated.")
    ]
    assert client.state is ClientState.TRANSACTION


def test_exchange_failure_is_err_without_code_and_stays_in_authorization() -> None:
    client = authorized(MS_GREETING)
    client.send_command("AUTH", "XOAUTH2")
    feed(client, b"+ \r\n")
    client.send_auth_response(Secret(MS_BLOB))
    events = feed(client, b"-ERR Authentication failure: unknown user name or bad password.\r\n")
    assert events == [Err("Authentication failure: unknown user name or bad password.", "")]
    assert client.state is ClientState.AUTHORIZATION
    assert client.send_command("QUIT") == b"QUIT\r\n"


def test_gmail_error_challenge_then_err() -> None:
    client = authorized(b"+OK Gpop ready for requests from 192.0.2.1 x1mb12345\r\n")
    client.send_command("AUTH", "XOAUTH2")
    assert feed(client, b"+ \r\n") == [Continuation("")]
    client.send_auth_response(Secret(MS_BLOB))
    assert feed(client, b"+ " + GOOGLE_ERROR.encode() + b"\r\n") == [Continuation(GOOGLE_ERROR)]
    assert client.send_auth_response(Secret("")) == b"\r\n"
    assert feed(client, b"-ERR [AUTH] Invalid credentials.\r\n") == [
        Err("[AUTH] Invalid credentials.", "AUTH")
    ]


def test_continuation_without_space_is_an_empty_challenge() -> None:
    client = authorized()
    client.send_command("AUTH", "XOAUTH2")
    assert feed(client, b"+\r\n") == [Continuation("")]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"-ERR [SYS/TEMP] try later", "SYS/TEMP"),
        (b"-ERR [in-use] locked", "IN-USE"),
        (b"-ERR [LOGIN-DELAY] wait", "LOGIN-DELAY"),
        (b"-ERR [AUTH/SOMETHING] x", "AUTH/SOMETHING"),
        (b"-ERR no code here", ""),
        (b"-ERR", ""),
    ],
)
def test_rfc3206_response_codes(line: bytes, code: str) -> None:
    client = authorized()
    client.send_command("USER", "bob")
    (event,) = feed(client, line + b"\r\n")
    assert isinstance(event, Err)
    assert event.code == code


def test_greeting_timestamp_for_apop() -> None:
    client = Pop3Client()
    (event,) = feed(client, b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n")
    assert event == Greeting(
        "POP3 server ready <1896.697170952@dbc.mtview.ca.us>", "<1896.697170952@dbc.mtview.ca.us>"
    )
    digest = Secret("c4c9334bac560ecc979e58001b3e22fb")
    assert client.send_command("APOP", "mrose", digest) == (
        b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
    )


def test_greeting_err_closes() -> None:
    client = Pop3Client()
    assert feed(client, b"-ERR [SYS/TEMP] too busy\r\n") == [Err("[SYS/TEMP] too busy", "SYS/TEMP")]
    assert client.state is ClientState.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send_command("QUIT")


# --- transaction replies -------------------------------------------------------------------


def test_uidl_list_stat_forms() -> None:
    client = in_transaction()
    client.send_command("STAT")
    assert feed(client, b"+OK 2 320\r\n") == [Ok("2 320")]
    client.send_command("UIDL", 1)
    assert feed(client, b"+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n") == [Ok("1 whqtswO00WBw418f9t5JxYwZ")]
    client.send_command("UIDL")
    events = feed(client, b"+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n")
    assert body_of(events) == b"1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n"
    assert events[-1] == MultilineEnd()
    client.send_command("LIST", "2")
    assert feed(client, b"-ERR no such message, only 1 messages in maildrop\r\n")[0] == Err(
        "no such message, only 1 messages in maildrop", ""
    )
    client.send_command("LIST")
    assert body_of(feed(client, b"+OK 1 messages\r\n1 120\r\n.\r\n")) == b"1 120\r\n"


def test_retr_unstuffs_and_normalises_line_ends() -> None:
    client = in_transaction()
    client.send_command("RETR", 1)
    events = feed(client, b"+OK 5 octets\r\nA\r\n..\r\n...x\r\nbare lf\n.\r\n")
    assert events[0] == Ok("5 octets")
    assert body_of(events) == b"A\r\n.\r\n..x\r\nbare lf\r\n"
    assert events[-1] == MultilineEnd()
    assert not client.reply_due


def test_err_to_retr_has_no_body() -> None:
    client = in_transaction()
    client.send_command("RETR", 9)
    assert feed(client, b"-ERR no such message\r\n") == [Err("no such message", "")]
    client.send_command("NOOP")
    assert feed(client, b"+OK\r\n") == [Ok("")]


def test_terminator_split_across_receive_calls() -> None:
    client = in_transaction()
    client.send_command("RETR", 1)
    events = feed(client, b"+OK\r\nline\r\n.")
    assert body_of(events) == b"line\r\n"
    assert MultilineEnd() not in events
    assert feed(client, b"\r") == []
    assert feed(client, b"\n") == [MultilineEnd()]


def test_stuffed_dot_split_from_its_line() -> None:
    client = in_transaction()
    client.send_command("RETR", 1)
    events = feed(client, b"+OK\r\n.")
    events += feed(client, b".\r\n.")
    events += feed(client, b"\r\n")
    assert body_of(events) == b".\r\n"
    assert events[-1] == MultilineEnd()


def test_retr_body_comes_in_chunks_as_it_arrives() -> None:
    client = in_transaction()
    client.send_command("RETR", 1)
    assert feed(client, b"+OK\r\n") == [Ok("")]
    for index in range(3):
        line = f"line {index}\r\n".encode()
        assert feed(client, line) == [MultilineBody(line)]
    assert feed(client, b".\r\n") == [MultilineEnd()]


def test_quit_closes_and_eof_is_connection_closed() -> None:
    client = in_transaction()
    client.send_command("QUIT")
    assert feed(client, b"+OK bye\r\n") == [Ok("bye")]
    assert client.state is ClientState.CLOSED
    client.receive_data(b"")
    assert client.next_event() == ConnectionClosed()


# --- our own misuse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "args"),
    [("RETR", (1,)), ("STAT", ()), ("DELE", (1,)), ("PASS", ("x",)), ("TOP", (1, 0))],
)
def test_commands_refused_in_authorization(verb: str, args: tuple[int | str, ...]) -> None:
    with pytest.raises(LocalProtocolError):
        authorized().send_command(verb, *args)


@pytest.mark.parametrize(("verb", "args"), [("USER", ("a",)), ("AUTH", ("XOAUTH2",)), ("STLS", ())])
def test_authorization_commands_refused_in_transaction(verb: str, args: tuple[str, ...]) -> None:
    with pytest.raises(LocalProtocolError):
        in_transaction().send_command(verb, *args)


def test_no_command_before_the_greeting_or_while_a_reply_is_due() -> None:
    client = Pop3Client()
    with pytest.raises(LocalProtocolError):
        client.send_command("CAPA")
    feed(client, b"+OK\r\n")
    client.send_command("CAPA")
    with pytest.raises(LocalProtocolError):
        client.send_command("CAPA")


def test_auth_response_only_after_a_continuation() -> None:
    client = authorized()
    with pytest.raises(LocalProtocolError):
        client.send_auth_response(Secret("AAAA"))
    client.send_command("AUTH", "XOAUTH2")
    with pytest.raises(LocalProtocolError):
        client.send_auth_response(Secret("AAAA"))


def test_auth_never_takes_an_initial_response() -> None:
    with pytest.raises(LocalProtocolError):
        authorized().send_command("AUTH", "XOAUTH2", MS_BLOB)


def test_command_line_limit_is_255_octets_and_hides_the_argument() -> None:
    client = authorized()
    client.send_command("USER", "u")
    feed(client, b"+OK\r\n")
    fits = "p" * (255 - len("PASS \r\n"))
    assert len(client.send_command("PASS", Secret(fits))) == 255
    feed(client, b"-ERR no\r\n")
    client.send_command("USER", "u")
    feed(client, b"+OK\r\n")
    with pytest.raises(LocalProtocolError) as caught:
        client.send_command("PASS", Secret(fits + "q"))
    assert "pppp" not in str(caught.value)


@pytest.mark.parametrize("argument", ["a\r\nDELE 1", "a\nb", "nul\x00", ""])
def test_arguments_with_line_breaks_are_refused(argument: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        authorized().send_command("USER", argument)
    assert "DELE" not in str(caught.value)


@pytest.mark.parametrize("number", ["0", "-1", "x", "1 2"])
def test_message_numbers_are_positive(number: str) -> None:
    with pytest.raises(LocalProtocolError):
        in_transaction().send_command("RETR", number)


def test_stls_only_once() -> None:
    client = authorized()
    client.send_command("STLS")
    feed(client, b"+OK begin TLS\r\n")
    with pytest.raises(LocalProtocolError):
        client.send_command("STLS")


# --- a server breaking the protocol ----------------------------------------------------------


def test_reply_line_over_512_octets_is_refused_before_it_ends() -> None:
    client = Pop3Client()
    client.receive_data(b"+OK " + b"x" * 508)  # 512 octets without CRLF: already too long
    with pytest.raises(RemoteProtocolError, match="512"):
        client.next_event()
    assert client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        client.next_event()


def test_reply_line_of_exactly_512_octets_is_accepted() -> None:
    client = Pop3Client()
    (event,) = feed(client, b"+OK " + b"x" * 506 + b"\r\n")
    assert isinstance(event, Greeting)


def test_sasl_status_line_over_512_is_refused_but_long_challenges_pass() -> None:
    client = authorized()
    client.send_command("AUTH", "XOAUTH2")
    challenge = "A" * 4000
    assert feed(client, b"+ " + challenge.encode() + b"\r\n") == [Continuation(challenge)]
    client.send_auth_response(Secret(""))
    with pytest.raises(RemoteProtocolError):
        feed(client, b"-ERR " + b"x" * 600 + b"\r\n")


def test_data_line_bound() -> None:
    client = in_transaction()
    client.send_command("RETR", 1)
    feed(client, b"+OK\r\n")
    assert feed(client, b"y" * 60_000) == []
    with pytest.raises(RemoteProtocolError, match="65536"):
        feed(client, b"y" * 6000)


@pytest.mark.parametrize(
    "reply", [b"OK\r\n", b"+OKAY\r\n", b"* OK hello\r\n", b"220 smtp\r\n", b"+ \r\n"]
)
def test_not_a_status_line(reply: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        feed(Pop3Client(), reply)


def test_excerpt_in_errors_is_short_and_printable() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        feed(Pop3Client(), b"\x1b[31mHELLO\x07 " + b"z" * 300 + b"\r\n")
    message = str(caught.value)
    assert "\x1b" not in message
    assert "\x07" not in message
    assert len(message) < 160


def test_data_after_the_stls_reply_is_refused() -> None:
    client = authorized()
    client.send_command("STLS")
    with pytest.raises(RemoteProtocolError, match="STLS"):
        feed(client, b"+OK begin\r\n-ERR injected\r\n")


def test_unsolicited_data_is_refused() -> None:
    client = authorized()
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        feed(client, b"+OK surprise\r\n")


def test_challenge_that_is_not_base64_is_refused() -> None:
    client = authorized()
    client.send_command("AUTH", "XOAUTH2")
    with pytest.raises(RemoteProtocolError):
        feed(client, b"+ not base64!\r\n")


def test_eof_mid_reply_is_remote_error() -> None:
    client = in_transaction()
    client.send_command("RETR", 1)
    feed(client, b"+OK\r\npartial\r\n")
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed"):
        client.next_event()


def test_protocol_errors_in_german() -> None:
    german = translator("de").gettext
    with pytest.raises(RemoteProtocolError) as caught:
        feed(Pop3Client(), b"220 smtp.example ESMTP\r\n")
    assert caught.value.translate(german) == (
        "keine POP3-Antwort auf die Begrüßung: '220 smtp.example ESMTP'"
    )
    with pytest.raises(RemoteProtocolError) as caught:
        feed(authorized(), b"+OK surprise\r\n")
    assert caught.value.translate(german) == "unerwartete Daten vom Server: '+OK surprise'"


def test_misuse_is_a_text_too_and_never_shows_the_argument() -> None:
    client = authorized()
    client.send_command("USER", "u")
    feed(client, b"+OK\r\n")
    with pytest.raises(LocalProtocolError) as caught:
        client.send_command("PASS", Secret("p" * 300))
    assert caught.value.as_text() == Text(
        "{verb} command of {size} octets exceeds POP3's {limit}", verb="PASS", size=307, limit=255
    )
    german = caught.value.as_text().translate(translator("de").gettext)
    assert german == "PASS-Befehl mit 307 Oktetten überschreitet die POP3-Grenze von 255"
    assert "ppp" not in german


def test_events_end_at_connection_closed() -> None:
    client = authorized()
    client.receive_data(b"")
    assert list(client.events()) == [ConnectionClosed()]
    assert client.state is ClientState.CLOSED


def test_need_data_until_a_line_is_complete() -> None:
    client = Pop3Client()
    client.receive_data(b"+OK rea")
    assert client.next_event() is NEED_DATA
    client.receive_data(b"dy\r\n")
    assert client.next_event() == Greeting("ready")


# --- property: garbage never raises anything but RemoteProtocolError -------------------------

_COMMANDS = [("CAPA", ()), ("USER", ("u",)), ("AUTH", ("XOAUTH2",)), ("STLS", ())]


@settings(max_examples=300, deadline=None)
@given(
    greeting=st.sampled_from([b"+OK hi\r\n", b""]),
    command=st.sampled_from(_COMMANDS),
    chunks=st.lists(st.binary(max_size=700), max_size=6),
)
def test_arbitrary_server_bytes_only_raise_remote_protocol_error(
    greeting: bytes, command: tuple[str, tuple[str, ...]], chunks: list[bytes]
) -> None:
    client = Pop3Client()
    try:
        feed(client, greeting)
        if client.state is ClientState.AUTHORIZATION:
            client.send_command(command[0], *command[1])
        for chunk in chunks:
            for event in feed(client, chunk):
                if isinstance(event, Continuation):
                    client.send_auth_response(Secret(""))
    except RemoteProtocolError:
        assert client.state is ClientState.ERROR


_DATA_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=300)
@given(
    lines=st.lists(st.tuples(_DATA_LINE, st.sampled_from([b"\r\n", b"\n"])), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_retr_body_matches_a_line_by_line_reading_in_any_chunking(
    lines: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    """Mixed CRLF and bare-LF line ends, stuffed dots and the "." line, cut anywhere: the body
    equals the RFC 1939 reading done one line at a time."""
    wire = b"+OK\r\n"
    for line, end in lines:
        wire += (b"." + line if line.startswith(b".") else line) + end
    wire += b".\r\n"
    expected = b"".join(line + b"\r\n" for line, _ in lines)
    client = in_transaction()
    client.send_command("RETR", 1)
    events: list[Event] = []
    previous = 0
    for cut in sorted({min(c, len(wire)) for c in cuts} - {0}):  # b"" would mean EOF
        events += feed(client, wire[previous:cut])
        previous = cut
    if previous < len(wire):
        events += feed(client, wire[previous:])
    assert body_of(events) == expected
    assert events[-1] == MultilineEnd()
    client.send_command("NOOP")
    assert feed(client, b"+OK after\r\n") == [Ok("after")]


@pytest.mark.parametrize(
    ("received", "data", "left"),
    [
        (b"a\r\n..b\r\n.\r\n+OK next", b"a\r\n.b\r\n", b"+OK next"),
        (b"a\n..b\n.\r\n+OK next", b"a\r\n.b\r\n", b"+OK next"),
        (b"a\r\nb\n.\n+OK", b"a\r\nb\r\n", b"+OK"),
        (b".\r\n+OK", b"", b"+OK"),
    ],
)
def test_take_data_leaves_what_follows_the_dot_line(
    received: bytes, data: bytes, left: bytes
) -> None:
    buffer = LineBuffer()
    buffer.feed(received)
    assert buffer.take_data(1000) == (data, True)
    assert buffer.peek(100) == left
