"""POP3 on the wire, for both sides: bounded line buffer, status lines, dot-stuffing.

Line ends: peers must send CRLF (RFC 1939 §3); a bare LF is accepted as a line end too, and what
we hand on always ends in CRLF. A CR that is not followed by LF is part of the line.

Bounds (a hostile peer must not make us buffer without limit):
- a command line is at most 255 octets including CRLF (RFC 2449 §4);
- the first line of a reply is at most 512 octets including CRLF (RFC 2449 §4);
- a SASL challenge or response line is exempt from both (RFC 5034 §4): `MAX_SASL_LINE`;
- a line of a multi-line reply has no limit in the RFCs: ours is `MAX_DATA_LINE`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from tokenpost.errors import RemoteProtocolError
from tokenpost.oauth.rfc6749 import sanitize_text
from tokenpost.text import Text

MAX_COMMAND_LINE: Final = 255
MAX_REPLY_LINE: Final = 512
MAX_SASL_LINE: Final = 32 * 1024
MAX_DATA_LINE: Final = 64 * 1024
EXCERPT_LIMIT: Final = 80

CRLF: Final = b"\r\n"
_RESPONSE_CODE = re.compile(r"\[([A-Za-z0-9/-]{1,40})\]")


# The commands both cores know, by the state that allows them (RFC 1939, 2449 CAPA, 2595 STLS,
# 5034 AUTH), and their argument counts (least, most). AUTH takes one argument from our client
# (always the two-line form); a server also accepts an initial response as the second.
AUTHORIZATION_COMMANDS: Final = frozenset({"USER", "PASS", "APOP", "AUTH", "STLS"})
TRANSACTION_COMMANDS: Final = frozenset({"STAT", "LIST", "UIDL", "RETR", "DELE", "RSET", "NOOP"})
ANY_STATE_COMMANDS: Final = frozenset({"CAPA", "QUIT"})
ARITY: Final = {
    "USER": (1, 1),
    "PASS": (1, 1),
    "APOP": (2, 2),
    "AUTH": (1, 2),
    "STLS": (0, 0),
    "STAT": (0, 0),
    "LIST": (0, 1),
    "UIDL": (0, 1),
    "RETR": (1, 1),
    "DELE": (1, 1),
    "RSET": (0, 0),
    "NOOP": (0, 0),
    "CAPA": (0, 0),
    "QUIT": (0, 0),
}
NUMBERED_COMMANDS: Final = frozenset({"LIST", "UIDL", "RETR", "DELE"})


def allowed_commands(*, transaction: bool) -> frozenset[str]:
    """The commands of the AUTHORIZATION (False) or TRANSACTION (True) state."""
    return ANY_STATE_COMMANDS | (TRANSACTION_COMMANDS if transaction else AUTHORIZATION_COMMANDS)


def is_multiline(verb: str, argument_count: int) -> bool:
    """Whether +OK to this command is followed by data lines and a "." line."""
    return verb in {"CAPA", "RETR"} or (verb in {"LIST", "UIDL"} and argument_count == 0)


class LocalProtocolError(Exception):
    """We tried to use POP3 wrongly (a command in the wrong state, a line too long, a reply not
    yet read): a programming error in tokenpost, never caused by the peer.

    Not a `TokenpostError`, so that it is never reported as a plain failure. Its message is a
    `Text` all the same (``LocalProtocolError(Text("…", …))``): a caller that turns it into one
    (a password that cannot be sent in a command) passes it on as a translated reason."""

    def __init__(self, text: Text) -> None:
        self.text = text
        super().__init__(str(text))

    def as_text(self) -> Text:
        return self.text


def excerpt(data: bytes | str, *, limit: int = EXCERPT_LIMIT) -> str:
    """Peer text made safe for a message: first line, printable characters only, cut short."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return sanitize_text(text, limit=limit)


class LineBuffer:
    """Received bytes, handed out as whole lines; refuses a line longer than the caller's limit
    as soon as that many octets have arrived without a line end."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._searched = 0  # no LF in _data[:_searched]: a resumed search starts there

    def __len__(self) -> int:
        return len(self._data)

    def feed(self, data: bytes) -> None:
        self._data += data

    def peek(self, size: int) -> bytes:
        return bytes(self._data[:size])

    def clear(self) -> None:
        self._data.clear()
        self._searched = 0

    def take_line(self, limit: int) -> bytes | None:
        """The next line without its CRLF (or LF), or None until one is complete.

        Raises:
            RemoteProtocolError: the line, with its line end, is longer than `limit` octets.
        """
        end = self._data.find(b"\n", self._searched)
        if end < 0:
            self._searched = len(self._data)
            _check_length(len(self._data) + 1, limit)
            return None
        _check_length(end + 1, limit)
        line = bytes(self._data[:end])
        del self._data[: end + 1]
        self._searched = 0
        return line[:-1] if line.endswith(b"\r") else line

    def take_data(self, limit: int) -> tuple[bytes, bool]:
        """The dot-unstuffed data (CRLF line ends) of every complete line of a multi-line reply
        received so far, and whether its terminating "." line was among them (RFC 1939 §3).
        Bytes after the "." line stay in the buffer.

        Whole runs of lines are handled at once with C-speed `split`/`find`/`replace`: a
        line-by-line loop in Python would cost more than the TLS read of the same bytes.

        Raises:
            RemoteProtocolError: a line, with its line end, is longer than `limit` octets.
        """
        last = self._data.rfind(b"\n", self._searched)
        if last < 0:
            self._searched = len(self._data)
            _check_length(len(self._data) + 1, limit)
            return b"", False
        raw = bytes(self._data[: last + 1])
        _check_length(max(map(len, raw.split(b"\n"))) + 1, limit)
        block = raw if raw.count(b"\n") == raw.count(b"\r\n") else _crlf_lines(raw)
        ended, cut = _terminator(block)
        if not ended:
            del self._data[: last + 1]
            self._searched = len(self._data)  # the rest holds no LF
            _check_length(len(self._data) + 1, limit)
            data = block
        else:
            del self._data[: cut + 3 if block is raw else _raw_offset(raw, cut)]
            self._searched = 0
            data = block[:cut]
        return (b"\r\n" + data).replace(b"\r\n.", b"\r\n")[2:], ended


def _crlf_lines(raw: bytes) -> bytes:
    """LF-terminated lines with CRLF line ends (a bare LF from a careless server)."""
    return b"".join(line.removesuffix(b"\r") + CRLF for line in raw[:-1].split(b"\n"))


def _terminator(block: bytes) -> tuple[bool, int]:
    """Whether `block` (CRLF lines, starting at a line) holds the "." line, and where the data
    before it ends (the end of `block` when it does not)."""
    if block.startswith(b".\r\n"):
        return True, 0
    found = block.find(b"\r\n.\r\n")
    return (True, found + 2) if found >= 0 else (False, len(block))


def _raw_offset(raw: bytes, cut: int) -> int:
    """The offset in `raw` just past the "." line, for a `cut` measured in its CRLF form."""
    position = normalised = 0
    while normalised < cut:
        end = raw.index(b"\n", position)
        normalised += end - position + (1 if raw[end - 1 : end] == b"\r" else 2)
        position = end + 1
    return raw.index(b"\n", position) + 1


def _check_length(length: int, limit: int) -> None:
    if length > limit:
        raise RemoteProtocolError("line longer than {limit} octets", limit=limit)


@dataclass(frozen=True, slots=True)
class StatusLine:
    """A parsed `+OK …` or `-ERR …` line."""

    ok: bool
    text: str
    code: str = ""


def parse_status(line: bytes) -> StatusLine | None:
    """`+OK`/`-ERR` (case-insensitive) followed by end of line or a space; else None."""
    head, _, rest = line.partition(b" ")
    upper = head.upper()
    if upper not in {b"+OK", b"-ERR"}:
        return None
    text = rest.decode("utf-8", "replace")
    if upper == b"+OK":
        return StatusLine(ok=True, text=text)
    match = _RESPONSE_CODE.match(text)
    return StatusLine(ok=False, text=text, code=match.group(1).upper() if match else "")


def format_status(*, ok: bool, text: str = "", code: str = "") -> bytes:
    """`+OK text` / `-ERR [CODE] text` with CRLF."""
    parts = ["+OK" if ok else "-ERR"]
    if code:
        parts.append(f"[{code}]")
    if text:
        parts.append(text)
    return " ".join(parts).encode("utf-8") + CRLF


class DotStuffer:
    """Streams a message into the data of a multi-line reply: CRLF line ends (bare LF becomes
    CRLF), a `.` doubled at the start of each line, and `finish()` adds the terminating `.` line.
    Chunks may split lines (even a CR from its LF) anywhere; memory is one chunk."""

    def __init__(self) -> None:
        self._line_start = True
        self._held_cr = False  # a chunk ended in CR: its LF may start the next chunk

    def feed(self, chunk: bytes) -> bytes:
        data = b"\r" + chunk if self._held_cr else chunk
        self._held_cr = data.endswith(b"\r")
        if self._held_cr:
            data = data[:-1]
        out = bytearray()
        position = 0
        while position < len(data):
            if self._line_start and data[position] == 0x2E:
                out += b"."
            newline = data.find(b"\n", position)
            if newline < 0:
                out += data[position:]
                self._line_start = False
                break
            end = newline - 1 if newline > position and data[newline - 1] == 0x0D else newline
            out += data[position:end]
            out += CRLF
            self._line_start = True
            position = newline + 1
        return bytes(out)

    def finish(self) -> bytes:
        out = bytearray()
        if self._held_cr:
            out += b"\r"
            self._held_cr, self._line_start = False, False
        if not self._line_start:
            out += CRLF
        self._line_start = True
        return bytes(out) + b"." + CRLF
