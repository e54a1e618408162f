"""What the POP3 client core reports: one event per server reply, or part of one.

A multi-line reply (CAPA, LIST and UIDL without an argument, RETR) arrives as `Ok`, then zero or
more `MultilineBody` chunks, then `MultilineEnd`. An `Err` to such a command has no body.
`NEED_DATA` means the core needs more bytes before it can say anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's `+OK` greeting; `timestamp` is its `<…@…>` APOP timestamp (RFC 1939 §7)."""

    text: str
    timestamp: str | None = None


@dataclass(frozen=True, slots=True)
class Ok:
    """`+OK text` (the text may carry data: `STAT`, `LIST n`, `UIDL n`)."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class Err:
    """`-ERR text`; `code` is the RFC 2449/3206 response code (`AUTH`, `SYS/TEMP`, `IN-USE`,
    `LOGIN-DELAY`…) upper case, or "". `text` is the whole text after `-ERR `, code included."""

    text: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class Continuation:
    """A SASL challenge (`+ <base64>`, RFC 5034 §4); "" for the empty one (`+ ` or `+`)."""

    challenge: str = ""


@dataclass(frozen=True, slots=True)
class MultilineBody:
    """Complete lines of a multi-line reply, dot-unstuffed, each ending in CRLF."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MultilineEnd:
    """The terminating `.` line of a multi-line reply."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection while no reply was due."""


Event = Greeting | Ok | Err | Continuation | MultilineBody | MultilineEnd | ConnectionClosed
EventOrNeedData = Event | Literal[NeedData.NEED_DATA]
