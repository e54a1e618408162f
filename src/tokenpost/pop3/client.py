"""The client side of POP3 (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH) as a state machine.

Theory of operation (after h11): the caller owns the connection. It writes the bytes that
`send_command` and `send_auth_response` return, feeds everything it reads to `receive_data`, and
calls `next_event` until that returns `NEED_DATA`. The core knows which reply form each command
gets (single line, multi-line, SASL continuations), so it never guesses where a reply ends.

Invariants:
- One command at a time: a command can be sent only when the previous reply is complete (no
  PIPELINING), and a SASL response only right after a `Continuation`.
- A multi-line reply is handed on as it arrives, in `MultilineBody` chunks of whole lines: a
  RETR body is never held in full, only its last incomplete line (at most `MAX_DATA_LINE`).
- Anything the server sends outside the protocol raises `tokenpost.errors.RemoteProtocolError`
  with a short, printable excerpt, and the core stays in `ERROR`. Misuse by the caller raises
  `LocalProtocolError`; its messages never hold command arguments (they may be secrets). The
  messages say what happened, not what to do: the adapter, which knows the server and the
  setting, adds that.
- AUTH is always the two-line form (`AUTH MECH`, then the initial response after the server's
  empty challenge): Exchange Online refuses an initial response on the AUTH line, and RFC 5034
  forbids one that would not fit into 255 octets, which OAuth tokens never do.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator

from tokenpost.errors import RemoteProtocolError
from tokenpost.pop3.events import (
    NEED_DATA,
    ConnectionClosed,
    Continuation,
    Err,
    Event,
    EventOrNeedData,
    Greeting,
    MultilineBody,
    MultilineEnd,
    Ok,
)
from tokenpost.pop3.wire import (
    ARITY,
    CRLF,
    EXCERPT_LIMIT,
    MAX_COMMAND_LINE,
    MAX_DATA_LINE,
    MAX_REPLY_LINE,
    MAX_SASL_LINE,
    NUMBERED_COMMANDS,
    LineBuffer,
    LocalProtocolError,
    StatusLine,
    allowed_commands,
    excerpt,
    is_multiline,
    parse_status,
)
from tokenpost.secret import Secret
from tokenpost.text import Text

_TIMESTAMP = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_FORBIDDEN_IN_ARGUMENT = re.compile(r"[\x00\r\n]")
_SASL_CHARS = re.compile(r"[A-Za-z0-9+/=]*")
_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")


class ClientState(enum.Enum):
    GREETING = "GREETING"  # connected, greeting not yet read
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    CLOSED = "CLOSED"  # after QUIT, a greeting -ERR, or the server's close
    ERROR = "ERROR"  # the server broke the protocol: nothing more can be done


class _Expect(enum.Enum):
    NOTHING = "nothing"
    GREETING = "greeting"
    STATUS = "status"  # one status line
    MULTILINE = "multiline"  # a status line, and after +OK data lines up to "."
    DATA = "data"  # the data lines of a multi-line reply
    END = "end"  # the "." line has been read; MultilineEnd is next
    SASL = "sasl"  # +OK, -ERR, or a "+ " continuation
    SASL_RESPONSE = "sasl_response"  # a continuation was reported: our answer is due


Argument = str | int | Secret


class Pop3Client:
    """One client connection's POP3 state. See the module docstring."""

    def __init__(self) -> None:
        self._state = ClientState.GREETING
        self._expect = _Expect.GREETING
        self._command = ""  # the verb whose reply is due or was last completed
        self._user_accepted = False  # USER got +OK: PASS is next
        self._stls_done = False
        self._buffer = LineBuffer()
        self._eof = False

    def __repr__(self) -> str:
        return f"<Pop3Client {self._state.value} expecting {self._expect.value}>"

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def reply_due(self) -> bool:
        """True while a reply (or our SASL response) is outstanding."""
        return self._expect is not _Expect.NOTHING

    # --- sending ---------------------------------------------------------------------------

    def send_command(self, verb: str, *args: Argument) -> bytes:
        """The command line to write, CRLF included.

        Raises:
            LocalProtocolError: unknown command, wrong state or argument count, a reply still
                due, an argument with CR/LF/NUL, or a line over 255 octets.
        """
        verb = verb.upper()
        self._check_can_send(verb, len(args))
        words = [verb]
        for arg in args:
            words.append(_argument(verb, arg))
        line = " ".join(words).encode("utf-8") + CRLF
        if len(line) > MAX_COMMAND_LINE:
            raise LocalProtocolError(
                Text(
                    "{verb} command of {size} octets exceeds POP3's {limit}",
                    verb=verb,
                    size=len(line),
                    limit=MAX_COMMAND_LINE,
                )
            )
        self._command = verb
        self._expect = _expectation(verb, args)
        if verb != "PASS":
            self._user_accepted = False  # set again by USER's +OK
        return line

    def send_auth_response(self, response: Secret) -> bytes:
        """Our answer to a `Continuation`: base64 (may be empty) or `*` to cancel (RFC 5034)."""
        if self._expect is not _Expect.SASL_RESPONSE:
            raise LocalProtocolError(Text("a SASL response is due only right after a continuation"))
        value = response.reveal()
        if value != "*" and not _SASL_CHARS.fullmatch(value):
            raise LocalProtocolError(Text("a SASL response must be base64 or *"))
        self._expect = _Expect.SASL
        return value.encode("ascii") + CRLF

    def _check_can_send(self, verb: str, count: int) -> None:
        state = self._state.value
        if self._expect is not _Expect.NOTHING:
            raise LocalProtocolError(
                Text(
                    "cannot send {verb}: the reply to {command} is due",
                    verb=verb,
                    command=self._command,
                )
            )
        if self._state not in {ClientState.AUTHORIZATION, ClientState.TRANSACTION}:
            raise LocalProtocolError(
                Text("cannot send {verb} in state {state}", verb=verb, state=state)
            )
        if verb not in ARITY:
            raise LocalProtocolError(
                Text("unsupported POP3 command {verb}", verb=excerpt(verb, limit=10))
            )
        least, most = (1, 1) if verb == "AUTH" else ARITY[verb]
        if not least <= count <= most:
            raise LocalProtocolError(
                Text(
                    "{verb} takes {least} to {most} arguments, not {count}",
                    verb=verb,
                    least=least,
                    most=most,
                    count=count,
                )
            )
        allowed = allowed_commands(transaction=self._state is ClientState.TRANSACTION)
        if verb not in allowed:
            raise LocalProtocolError(
                Text("{verb} is not allowed in state {state}", verb=verb, state=state)
            )
        if verb == "PASS" and not self._user_accepted:
            raise LocalProtocolError(Text("a USER that got +OK must come before PASS"))
        if verb == "STLS" and self._stls_done:
            raise LocalProtocolError(Text("STLS was already done on this connection"))

    # --- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the connection; b"" means the server closed it."""
        if self._eof and data:
            raise LocalProtocolError(Text("data received after the end of the connection"))
        if data:
            self._buffer.feed(data)
        else:
            self._eof = True

    def next_event(self) -> EventOrNeedData:
        """The next event, or `NEED_DATA`.

        Raises:
            RemoteProtocolError: the server broke the protocol (the core moves to `ERROR`).
            LocalProtocolError: called again after an error.
        """
        if self._state is ClientState.ERROR:
            raise LocalProtocolError(Text("the connection is unusable after a protocol error"))
        try:
            return self._next()
        except RemoteProtocolError:
            self._state = ClientState.ERROR
            raise

    def events(self) -> Iterator[Event]:
        """`next_event` until `NEED_DATA` or `ConnectionClosed` (which is the last event)."""
        while (event := self.next_event()) is not NEED_DATA:
            yield event
            if isinstance(event, ConnectionClosed):
                return

    def _next(self) -> EventOrNeedData:
        match self._expect:
            case _Expect.NOTHING | _Expect.SASL_RESPONSE:
                return self._unsolicited()
            case _Expect.DATA:
                return self._data()
            case _Expect.END:
                self._expect = _Expect.NOTHING
                return MultilineEnd()
            case _Expect.SASL:
                line = self._line(MAX_SASL_LINE)
            case _:
                line = self._line(MAX_REPLY_LINE)
        if line is None:
            return NEED_DATA
        return self._reply(line)

    def _line(self, limit: int) -> bytes | None:
        line = self._buffer.take_line(limit)
        if line is None and self._eof:
            raise RemoteProtocolError(
                "server closed the connection; no reply to {what}", what=self._what()
            )
        return line

    def _what(self) -> str | Text:
        return Text("the greeting") if self._expect is _Expect.GREETING else self._command

    def _unsolicited(self) -> EventOrNeedData:
        if len(self._buffer):
            unexpected = self._buffer.peek(EXCERPT_LIMIT)
            raise RemoteProtocolError(
                "unexpected data from the server: {data!r}", data=excerpt(unexpected)
            )
        if self._eof:
            self._state = ClientState.CLOSED
            return ConnectionClosed()
        return NEED_DATA

    def _reply(self, line: bytes) -> Event:
        if self._expect is _Expect.SASL and line[:1] == b"+" and line[1:2] in {b"", b" "}:
            return self._continuation(line[2:])
        status = parse_status(line)
        if status is None:
            raise RemoteProtocolError(
                "not a POP3 reply to {what}: {line!r}", what=self._what(), line=excerpt(line)
            )
        if len(line) + len(CRLF) > MAX_REPLY_LINE:
            raise RemoteProtocolError("reply longer than {limit} octets", limit=MAX_REPLY_LINE)
        if self._expect is _Expect.GREETING:
            return self._greeting(status)
        multiline = self._expect is _Expect.MULTILINE and status.ok
        self._expect = _Expect.DATA if multiline else _Expect.NOTHING
        self._transition(status.ok)
        if status.ok:
            return Ok(status.text)
        return Err(status.text, status.code)

    def _greeting(self, status: StatusLine) -> Event:
        self._expect = _Expect.NOTHING
        if not status.ok:
            self._state = ClientState.CLOSED
            return Err(status.text, status.code)
        self._state = ClientState.AUTHORIZATION
        found = _TIMESTAMP.search(status.text)
        return Greeting(status.text, found.group(0) if found else None)

    def _continuation(self, rest: bytes) -> Continuation:
        challenge = rest.strip()
        if not _SASL_CHARS.fullmatch(challenge.decode("latin-1")):
            raise RemoteProtocolError(
                "SASL challenge is not base64: {data!r}", data=excerpt(challenge)
            )
        self._expect = _Expect.SASL_RESPONSE
        return Continuation(challenge.decode("ascii"))

    def _transition(self, ok: bool) -> None:
        """State changes that a completed status reply causes (RFC 1939 §§3-6, RFC 2595 §4)."""
        verb = self._command
        if verb == "QUIT":
            self._state = ClientState.CLOSED
        elif not ok:
            self._user_accepted = False
        elif verb == "USER":
            self._user_accepted = True
        elif verb in {"PASS", "APOP", "AUTH"}:
            self._state = ClientState.TRANSACTION
            self._user_accepted = False
        elif verb == "STLS":
            self._stls_done = True
            if len(self._buffer):
                # Bytes sent before the handshake would be taken for protected ones
                # (CVE-2011-0411 and kin): refuse them.
                raise RemoteProtocolError("server sent data after its STLS reply, before TLS")

    def _data(self) -> EventOrNeedData:
        data, ended = self._buffer.take_data(MAX_DATA_LINE)
        if ended:
            self._expect = _Expect.END
        if data:
            return MultilineBody(data)
        if ended:
            return self._next()
        if self._eof:
            raise RemoteProtocolError(
                "server closed the connection during the {verb} data", verb=self._command
            )
        return NEED_DATA


def _argument(verb: str, arg: Argument) -> str:
    if isinstance(arg, int):
        value = str(arg)
    elif isinstance(arg, Secret):
        value = arg.reveal()
    else:
        value = arg
    if verb in NUMBERED_COMMANDS and not (value.isascii() and value.isdigit() and int(value) > 0):
        raise LocalProtocolError(Text("{verb} takes a message number (1 or more)", verb=verb))
    if verb == "AUTH" and not _MECHANISM.fullmatch(value):
        raise LocalProtocolError(Text("AUTH takes a SASL mechanism name (RFC 4422 §3.1)"))
    if not value or _FORBIDDEN_IN_ARGUMENT.search(value):
        raise LocalProtocolError(
            Text("{verb}: an argument is empty or holds CR, LF or NUL", verb=verb)
        )
    if verb != "PASS" and " " in value:
        raise LocalProtocolError(Text("{verb}: an argument holds a space", verb=verb))
    return value


def _expectation(verb: str, args: tuple[Argument, ...]) -> _Expect:
    if verb == "AUTH":
        return _Expect.SASL
    return _Expect.MULTILINE if is_multiline(verb, len(args)) else _Expect.STATUS
