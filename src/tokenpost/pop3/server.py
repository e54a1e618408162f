"""The server side of POP3 as a state machine: AUTHORIZATION → TRANSACTION → UPDATE (RFC 1939).

The mirror of `pop3.client`: the caller feeds what the client sent to `receive_data`, takes
commands from `next_event`, and answers each with `ok`, `err` or (during AUTH) `challenge`,
writing the bytes they return. After `ok` to a multi-line command (CAPA, RETR, LIST/UIDL
without argument) it streams the data through `data` (which dot-stuffs) and closes with `end`.

The core checks the grammar and the state (a command the state does not allow comes out as
`Rejected`, to be answered with `err`); the caller decides everything about mailboxes and
credentials. Commands are answered strictly in order: the next one is read only after the
previous reply is complete, so pipelining clients are served correctly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tokenpost.errors import RemoteProtocolError
from tokenpost.pop3.events import NEED_DATA, ConnectionClosed, NeedData
from tokenpost.pop3.wire import (
    ARITY,
    CRLF,
    MAX_COMMAND_LINE,
    MAX_SASL_LINE,
    NUMBERED_COMMANDS,
    DotStuffer,
    LineBuffer,
    LocalProtocolError,
    allowed_commands,
    format_status,
    is_multiline,
)
from tokenpost.text import Text


class ServerState(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"  # QUIT received in TRANSACTION: commit deletions, then answer
    CLOSED = "CLOSED"  # QUIT answered, or a fatal rejection answered


@dataclass(frozen=True, slots=True)
class Command:
    """A command valid in the current state; `verb` upper case. PASS keeps its spaces."""

    verb: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """The client's line after a challenge: base64 text (maybe empty) or `*` (cancel)."""

    response: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that is not a command valid now; answer with `err(reason)`. After a `fatal` one
    (a line over the length limit) the connection ends. `reason` is the text of that `-ERR` on
    the wire: protocol text for the peer, English, never translated."""

    reason: str
    fatal: bool = False


ServerEvent = Command | AuthResponse | Rejected | ConnectionClosed


class _Answer(enum.Enum):
    NONE = "none"  # nothing due: the next line may be read
    REPLY = "reply"  # a status reply to the current command is due
    CHALLENGE_ANSWER = "challenge_answer"  # a challenge was sent: the client's line is next
    DATA = "data"  # +OK to a multi-line command was sent: data lines, then end()


class Pop3Server:
    """One server connection's POP3 state. See the module docstring."""

    def __init__(self) -> None:
        self._state = ServerState.AUTHORIZATION
        self._answer = _Answer.NONE
        self._current: Command | Rejected | None = None
        self._user_accepted = False
        self._stls_done = False
        self._stuffer = DotStuffer()
        self._buffer = LineBuffer()
        self._eof = False

    @property
    def state(self) -> ServerState:
        return self._state

    @staticmethod
    def greeting(text: str) -> bytes:
        """The `+OK` greeting; put an APOP timestamp `<…@…>` into `text` to offer APOP."""
        return format_status(ok=True, text=text)

    # --- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; b"" means it closed the connection."""
        if data:
            self._buffer.feed(data)
        else:
            self._eof = True

    def next_event(self) -> ServerEvent | NeedData:
        """The next command (or SASL response) to answer, or `NEED_DATA`.

        Raises:
            LocalProtocolError: the previous command has not been answered completely.
        """
        if self._answer not in {_Answer.NONE, _Answer.CHALLENGE_ANSWER}:
            raise LocalProtocolError(Text("answer the current command before reading the next"))
        if self._state is ServerState.CLOSED:
            return ConnectionClosed()
        sasl = self._answer is _Answer.CHALLENGE_ANSWER
        try:
            line = self._buffer.take_line(MAX_SASL_LINE if sasl else MAX_COMMAND_LINE)
        except RemoteProtocolError as exc:
            return self._reject(str(exc), fatal=True)
        if line is None:
            return ConnectionClosed() if self._eof else NEED_DATA
        if sasl:
            self._answer = _Answer.REPLY
            return AuthResponse(line.decode("latin-1").strip())
        return self._command(line)

    def _command(self, line: bytes) -> ServerEvent:
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            return self._reject("command is not ASCII")
        verb, _, rest = text.partition(" ")
        verb = verb.upper()
        args = (rest,) if verb == "PASS" and rest else tuple(rest.split())
        problem = self._problem(verb, args)
        if problem:
            return self._reject(problem)
        command = Command(verb, args)
        self._current, self._answer = command, _Answer.REPLY
        if verb != "PASS":
            self._user_accepted = False
        if verb == "QUIT" and self._state is ServerState.TRANSACTION:
            self._state = ServerState.UPDATE
        return command

    def _problem(self, verb: str, args: tuple[str, ...]) -> str:
        """Why the command cannot be taken now, or ""."""
        if verb not in ARITY:
            return "unknown command"
        least, most = ARITY[verb]
        transaction = self._state is ServerState.TRANSACTION
        numbered = verb in NUMBERED_COMMANDS and bool(args)
        checks = (
            (verb not in allowed_commands(transaction=transaction), "not allowed in this state"),
            (not least <= len(args) <= most, f"wrong number of arguments for {verb}"),
            (numbered and not (args[0].isdigit() and int(args[0]) > 0), "invalid message number"),
            (verb == "PASS" and not self._user_accepted, "USER first"),
            (verb == "STLS" and self._stls_done, "TLS is already active"),
        )
        return next((reason for failed, reason in checks if failed), "")

    def _reject(self, reason: str, *, fatal: bool = False) -> Rejected:
        rejected = Rejected(reason, fatal=fatal)
        self._current, self._answer = rejected, _Answer.REPLY
        return rejected

    # --- answering -------------------------------------------------------------------------

    def ok(self, text: str = "") -> bytes:
        """`+OK` to the current command, with its state change."""
        command = self._reply_due()
        if not isinstance(command, Command):
            raise LocalProtocolError(Text("a rejected line is answered with err()"))
        verb = command.verb
        self._answer = _Answer.DATA if is_multiline(verb, len(command.args)) else _Answer.NONE
        if verb == "USER":
            self._user_accepted = True
        elif verb in {"PASS", "APOP", "AUTH"}:
            self._state = ServerState.TRANSACTION
        elif verb == "QUIT":
            self._state = ServerState.CLOSED
        elif verb == "STLS":
            # Anything the client pipelined behind STLS was sent in the clear: drop it.
            self._stls_done = True
            self._buffer.clear()
        return format_status(ok=True, text=text)

    def err(self, text: str = "", *, code: str = "") -> bytes:
        """`-ERR [code] text` to the current command or rejected line."""
        current = self._reply_due()
        self._answer = _Answer.NONE
        fatal = isinstance(current, Rejected) and current.fatal
        if fatal or (isinstance(current, Command) and current.verb == "QUIT"):
            self._state = ServerState.CLOSED
        if isinstance(current, Command) and current.verb == "PASS":
            self._user_accepted = False
        return format_status(ok=False, text=text, code=code)

    def challenge(self, challenge: str = "") -> bytes:
        """`+ <base64>` during AUTH; the client's answer comes as `AuthResponse`."""
        current = self._reply_due()
        if not (isinstance(current, Command) and current.verb == "AUTH"):
            raise LocalProtocolError(Text("a challenge answers AUTH only"))
        self._answer = _Answer.CHALLENGE_ANSWER
        return b"+ " + challenge.encode("ascii") + CRLF

    def data(self, chunk: bytes) -> bytes:
        """Part of a multi-line reply's data (any split; LF or CRLF line ends), dot-stuffed."""
        self._require_data()
        return self._stuffer.feed(chunk)

    def end(self) -> bytes:
        """The end of a multi-line reply: a final CRLF if needed, then the `.` line."""
        self._require_data()
        self._answer = _Answer.NONE
        return self._stuffer.finish()

    def _reply_due(self) -> Command | Rejected:
        if self._answer is not _Answer.REPLY or self._current is None:
            raise LocalProtocolError(Text("no command is waiting for a reply"))
        return self._current

    def _require_data(self) -> None:
        if self._answer is not _Answer.DATA:
            raise LocalProtocolError(Text("data belongs after +OK to a multi-line command"))
