"""POP3 (RFC 1939, 2449, 5034) as sans-I/O state machines: the client and the server side.

    client = Pop3Client()
    client.receive_data(greeting_bytes)
    client.next_event()                  # Greeting(text=…, timestamp=…)
    writer.write(client.send_command("UIDL"))
    ...                                  # Ok, MultilineBody…, MultilineEnd

`pop3.client` and `pop3.server` hold the two state machines, `pop3.events` what the client
reports, `pop3.wire` the line grammar, bounds and dot-stuffing both share.
"""

from tokenpost.pop3.client import ClientState, Pop3Client
from tokenpost.pop3.events import (
    NEED_DATA,
    ConnectionClosed,
    Continuation,
    Err,
    Event,
    Greeting,
    MultilineBody,
    MultilineEnd,
    NeedData,
    Ok,
)
from tokenpost.pop3.server import AuthResponse, Command, Pop3Server, Rejected, ServerState
from tokenpost.pop3.wire import LocalProtocolError

__all__ = [
    "NEED_DATA",
    "AuthResponse",
    "ClientState",
    "Command",
    "ConnectionClosed",
    "Continuation",
    "Err",
    "Event",
    "Greeting",
    "LocalProtocolError",
    "MultilineBody",
    "MultilineEnd",
    "NeedData",
    "Ok",
    "Pop3Client",
    "Pop3Server",
    "Rejected",
    "ServerState",
]
