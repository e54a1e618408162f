"""The POP3 server core: the AUTHORIZATION → TRANSACTION → UPDATE state machine, and its
conversation with the client core (h11-style paired connections)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenpost.pop3 import (
    NEED_DATA,
    AuthResponse,
    ClientState,
    Command,
    ConnectionClosed,
    Continuation,
    Err,
    Event,
    LocalProtocolError,
    MultilineBody,
    MultilineEnd,
    Ok,
    Pop3Client,
    Pop3Server,
    Rejected,
    ServerState,
)
from tokenpost.pop3.wire import DotStuffer
from tokenpost.secret import Secret


def command_of(server: Pop3Server, data: bytes) -> object:
    server.receive_data(data)
    return server.next_event()


def logged_in() -> Pop3Server:
    server = Pop3Server()
    assert command_of(server, b"USER alice\r\n") == Command("USER", ("alice",))
    server.ok()
    assert command_of(server, b"PASS pass word\r\n") == Command("PASS", ("pass word",))
    server.ok()
    assert server.state is ServerState.TRANSACTION
    return server


def test_greeting_bytes() -> None:
    assert Pop3Server.greeting("ready <1.2@x>") == b"+OK ready <1.2@x>\r\n"


def test_commands_are_case_insensitive_and_need_data_until_a_line_ends() -> None:
    server = Pop3Server()
    server.receive_data(b"capa")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\r\n")
    assert server.next_event() == Command("CAPA")


def test_capa_is_multiline_and_dot_stuffed() -> None:
    server = Pop3Server()
    command_of(server, b"CAPA\r\n")
    out = server.ok() + server.data(b"UIDL\r\n.weird\n") + server.end()
    assert out == b"+OK\r\nUIDL\r\n..weird\r\n.\r\n"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"RETR 1\r\n", "not allowed"),
        (b"PASS x\r\n", "USER first"),
        (b"FOO\r\n", "unknown command"),
        (b"USER\r\n", "wrong number"),
        (b"\xff\xfe\r\n", "ASCII"),
    ],
)
def test_rejected_lines_are_answered_with_err(line: bytes, reason: str) -> None:
    server = Pop3Server()
    event = command_of(server, line)
    assert isinstance(event, Rejected)
    assert reason in event.reason
    assert server.err(event.reason).startswith(b"-ERR ")
    assert server.state is ServerState.AUTHORIZATION


def test_invalid_message_number_is_rejected() -> None:
    server = logged_in()
    event = command_of(server, b"DELE 0\r\n")
    assert isinstance(event, Rejected)


def test_overlong_command_is_fatal() -> None:
    server = Pop3Server()
    event = command_of(server, b"USER " + b"a" * 300)
    assert isinstance(event, Rejected)
    assert event.fatal
    server.err(event.reason)
    assert server.state is ServerState.CLOSED
    assert server.next_event() == ConnectionClosed()


def test_one_answer_per_command() -> None:
    server = Pop3Server()
    command_of(server, b"NOOP\r\nCAPA\r\n")
    with pytest.raises(LocalProtocolError):
        server.next_event()
    server.err("no")
    with pytest.raises(LocalProtocolError):
        server.ok()


def test_pipelined_commands_are_answered_in_order() -> None:
    server = logged_in()
    server.receive_data(b"STAT\r\nDELE 1\r\nNOOP\r\n")
    verbs = []
    while (event := server.next_event()) is not NEED_DATA:
        assert isinstance(event, Command)
        verbs.append(event.verb)
        server.ok()
    assert verbs == ["STAT", "DELE", "NOOP"]


def test_auth_challenge_and_response() -> None:
    server = Pop3Server()
    assert command_of(server, b"AUTH XOAUTH2\r\n") == Command("AUTH", ("XOAUTH2",))
    assert server.challenge("") == b"+ \r\n"
    assert command_of(server, b"dXNlcj0=\r\n") == AuthResponse("dXNlcj0=")
    assert server.challenge("eyJ9") == b"+ eyJ9\r\n"
    assert command_of(server, b"\r\n") == AuthResponse("")
    server.err("failed", code="AUTH")
    assert server.state is ServerState.AUTHORIZATION
    assert command_of(server, b"AUTH PLAIN AHUAcA==\r\n") == Command("AUTH", ("PLAIN", "AHUAcA=="))
    server.ok()
    assert server.state is ServerState.TRANSACTION


def test_challenge_only_answers_auth() -> None:
    server = Pop3Server()
    command_of(server, b"CAPA\r\n")
    with pytest.raises(LocalProtocolError):
        server.challenge("")


def test_quit_in_transaction_goes_through_update() -> None:
    server = logged_in()
    command_of(server, b"QUIT\r\n")
    assert server.state is ServerState.UPDATE
    assert server.ok("bye") == b"+OK bye\r\n"
    assert server.state is ServerState.CLOSED


def test_quit_in_authorization_skips_update() -> None:
    server = Pop3Server()
    command_of(server, b"QUIT\r\n")
    assert server.state is ServerState.AUTHORIZATION
    server.ok()
    assert server.state is ServerState.CLOSED


def test_bytes_pipelined_behind_stls_are_dropped() -> None:
    server = Pop3Server()
    command_of(server, b"STLS\r\nUSER injected\r\n")
    server.ok()
    assert server.next_event() is NEED_DATA
    event = command_of(server, b"STLS\r\n")
    assert isinstance(event, Rejected)


def test_data_needs_a_multiline_ok() -> None:
    server = logged_in()
    command_of(server, b"UIDL 1\r\n")
    server.ok("1 abc")
    with pytest.raises(LocalProtocolError):
        server.data(b"x")


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=400), max_size=8))
def test_arbitrary_client_bytes_are_commands_or_rejections(chunks: list[bytes]) -> None:
    server = Pop3Server()
    for chunk in chunks:
        server.receive_data(chunk)
        while (event := server.next_event()) is not NEED_DATA:
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, Command) and event.verb == "AUTH":
                server.challenge("")
            elif isinstance(event, Command | Rejected | AuthResponse):
                server.err("no")


# --- DotStuffer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
        (b"x\r\r\n", b"x\r\r\n.\r\n"),
        (b"end\r", b"end\r\r\n.\r\n"),
        (b"..\r\n.x", b"...\r\n..x\r\n.\r\n"),
    ],
)
def test_dot_stuffer_vectors(message: bytes, wire: bytes) -> None:
    stuffer = DotStuffer()
    assert stuffer.feed(message) + stuffer.finish() == wire


@settings(max_examples=300, deadline=None)
@given(message=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_dot_stuffer_output_does_not_depend_on_chunking(message: bytes, cuts: list[int]) -> None:
    whole = DotStuffer()
    expected = whole.feed(message) + whole.finish()
    pieces = DotStuffer()
    out = b""
    for chunk in split(message, cuts):
        out += pieces.feed(chunk)
    assert out + pieces.finish() == expected


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


# --- both cores talking: server stuffing → client unstuffing -------------------------------

_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))


def retr_through_both_cores(message: bytes, cuts: list[int]) -> tuple[bytes, list[Event]]:
    server, client = Pop3Server(), Pop3Client()
    client.receive_data(Pop3Server.greeting("hi"))
    list(client.events())
    for request, reply in (
        (("USER", "u"), server.ok),
        (("PASS", Secret("p")), server.ok),
        (("RETR", 1), server.ok),
    ):
        server.receive_data(client.send_command(*request))
        assert isinstance(server.next_event(), Command)
        wire = reply()
        if request[0] != "RETR":
            client.receive_data(wire)
            list(client.events())
    wire += server.data(message) + server.end()
    events: list[Event] = []
    for chunk in split(wire, cuts):
        client.receive_data(chunk)
        events += client.events()
    return b"".join(e.data for e in events if isinstance(e, MultilineBody)), events


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.one_of(_LINE, st.sampled_from([b".", b"..", b".x", b"\r"])), max_size=30),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_any_message_round_trips_in_any_chunking(lines: list[bytes], cuts: list[int]) -> None:
    message = b"".join(line + b"\r\n" for line in lines)
    received, events = retr_through_both_cores(message, cuts)
    assert received == message
    assert events[0] == Ok("")
    assert events[-1] == MultilineEnd()
    assert events.count(MultilineEnd()) == 1


def test_auth_exchange_between_the_cores() -> None:
    server, client = Pop3Server(), Pop3Client()
    client.receive_data(Pop3Server.greeting("hi"))
    list(client.events())
    server.receive_data(client.send_command("AUTH", "XOAUTH2"))
    assert server.next_event() == Command("AUTH", ("XOAUTH2",))
    client.receive_data(server.challenge(""))
    assert list(client.events()) == [Continuation("")]
    server.receive_data(client.send_auth_response(Secret("YmxvYg==")))
    assert server.next_event() == AuthResponse("YmxvYg==")
    client.receive_data(server.err("Authentication failed.", code="AUTH"))
    assert list(client.events()) == [Err("[AUTH] Authentication failed.", "AUTH")]
    assert client.state is ClientState.AUTHORIZATION
    server.receive_data(client.send_command("QUIT"))
    server.next_event()
    client.receive_data(server.ok("bye"))
    assert list(client.events()) == [Ok("bye")]
    assert client.state is ClientState.CLOSED
    assert server.state is ServerState.CLOSED
