"""The failures of the POP3 client adapter, as the administrator reads them.

One function per kind of failure; `pop3_client` raises what they return. Every message names the
server (``host:port``) and ends in what to do about it: check a setting of the POP setting, the
network, or ask the server's operator. The server's reply (cut short, printable) and the OS's or
TLS library's reason are parameters, never part of a msgid; a protocol error of the core (which
knows no server) is passed on whole, as the reason.

Nothing here holds a credential: replies are the server's, and servers echo none.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

from tokenpost.adapters.tls import handshake_reason, verify_failed
from tokenpost.errors import (
    MailAuthError,
    OperationError,
    RemoteProtocolError,
    TokenpostError,
    TransportError,
    UsageError,
)
from tokenpost.pop3.events import ConnectionClosed, Err, Event, Ok
from tokenpost.pop3.wire import LocalProtocolError, excerpt
from tokenpost.sasl import SaslClient
from tokenpost.settings.network import Trust
from tokenpost.text import Text

REPLY_EXCERPT: Final = 200
# RFC 3206 codes that say a refusal is temporary: no new token or password would change it.
TEMPORARY_CODES: Final = frozenset({"SYS/TEMP", "IN-USE", "LOGIN-DELAY"})
_OAUTH_MECHANISMS: Final = frozenset({"XOAUTH2", "OAUTHBEARER"})
GREETING: Final = Text("the greeting")


def reply_text(event: Event) -> str:
    """A reply as messages and the debug log show it: status and text, cut short."""
    if isinstance(event, Err):
        return excerpt(f"-ERR {event.text}", limit=REPLY_EXCERPT)
    if isinstance(event, Ok):
        return excerpt(f"+OK {event.text}", limit=REPLY_EXCERPT)
    return type(event).__name__


def failure_reason(exc: BaseException) -> str:
    """Why a connection, TLS or a file failed, in the TLS library's or the OS's words."""
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def io_failure(
    server: str, exc: Exception, *, timeout: float, trust: Trust
) -> TokenpostError | None:
    """The error for an I/O failure; None for anything else (our own errors, a programming error
    such as LocalProtocolError, the sink's own failure). A certificate that did not verify is
    reported with `trust`, what it was checked against."""
    if isinstance(exc, TimeoutError):
        return TransportError(
            "{server} did not answer within {seconds:g} s; check the server name and port, the "
            "network, and that no firewall drops the connection",
            server=server,
            seconds=timeout,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return verify_failed(server, exc, trust)
    if isinstance(exc, ssl.SSLError):
        return TransportError(
            "TLS with {server} failed ({reason}); check the port and the security setting (tls "
            "is usually port 995, starttls port 110)",
            server=server,
            reason=handshake_reason(exc),
        )
    if isinstance(exc, OSError):
        return _connection_failed(server, exc)
    return None


def _connection_failed(server: str, exc: OSError) -> TransportError:
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            "the connection to {server} failed: connection refused; check the server name and "
            "port, and that no firewall blocks the connection",
            server=server,
        )
    if isinstance(exc, socket.gaierror):
        return TransportError(
            "the connection to {server} failed: host name not resolved; check the server name "
            "and the device's DNS settings",
            server=server,
        )
    return TransportError(
        "the connection to {server} failed: {reason}; check the server name and port, the "
        "network, and that no firewall blocks the connection",
        server=server,
        reason=failure_reason(exc),
    )


def broken_protocol(server: str, error: RemoteProtocolError) -> RemoteProtocolError:
    """A protocol error of the core (or a listing), with the server and what to do."""
    return RemoteProtocolError(
        "{server}: {reason}; check the server name, port and security setting, or report it to "
        "the server's operator",
        server=server,
        reason=error,
    )


def auth_refused(
    server: str, event: Err, what: str | Text, client: SaslClient | None = None
) -> OperationError:
    """`-ERR` to the greeting, AUTH, USER/PASS or APOP: `MailAuthError`, or `TransportError`
    when an RFC 3206 code says the refusal is temporary."""
    reply = reply_text(event)
    if event.code in TEMPORARY_CODES:
        return TransportError(
            "{server} is not available now ({what}): {reply}; try again later",
            server=server,
            what=what,
            reply=reply,
        )
    status = client.error.status if client is not None and client.error else ""
    # A Text, because `reply=` is also MailAuthError's own field.
    if client is not None and client.mechanism.upper() in _OAUTH_MECHANISMS:
        text = Text(
            "{server} refused authentication ({what}): {reply}; check the account, that POP is "
            "enabled for the mailbox, and that the token was obtained for this account "
            "(tokenpost token get)",
            server=server,
            what=what,
            reply=reply,
        )
    else:
        text = Text(
            "{server} refused authentication ({what}): {reply}; check the account and the "
            "password of the POP setting",
            server=server,
            what=what,
            reply=reply,
        )
    return MailAuthError(text, reply=reply, status=status)


def unexpected(server: str, event: Event, what: str | Text) -> RemoteProtocolError:
    """An event the exchange did not allow at this point (a close, a reply out of place)."""
    if isinstance(event, ConnectionClosed):
        return RemoteProtocolError(
            "{server} closed the connection during {what}; check the port and the security setting",
            server=server,
            what=what,
        )
    return RemoteProtocolError(
        "{server}: unexpected {event} in {what}; check the port and the security setting",
        server=server,
        event=type(event).__name__,
        what=what,
    )


def no_stls(server: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server} does not offer STLS; refusing to continue without TLS (check the port and the "
        "security setting)",
        server=server,
    )


def stls_refused(server: str, event: Event) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server} refused STLS: {reply}; refusing to continue without TLS (check the port and "
        "the security setting)",
        server=server,
        reply=reply_text(event),
    )


def too_many_challenges(server: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server}: too many SASL challenges; check the authentication method of the POP setting",
        server=server,
    )


def no_apop(server: str) -> MailAuthError:
    return MailAuthError(
        "{server} does not offer APOP (its greeting has no timestamp); choose another "
        "authentication method for the POP setting (--auth)",
        server=server,
    )


def unsendable(verb: str, error: LocalProtocolError) -> UsageError:
    """A user name or password that no POP3 command line can carry (the reason never holds it)."""
    return UsageError(
        "{verb}: the user name or password cannot be sent in a POP3 command ({reason}); correct "
        "the account or password of the POP setting",
        verb=verb,
        reason=error,
    )


def no_uidl(server: str, event: Event) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server} does not support UIDL: {reply}; tokenpost needs UIDL (RFC 1939) to receive: "
        "ask the server's operator to enable it",
        server=server,
        reply=reply_text(event),
    )


def bad_listing(server: str, number: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server}: UIDL listing repeats message {number} or is too long; report it to the "
        "server's operator",
        server=server,
        number=number,
    )


def retr_refused(server: str, number: int, event: Event) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server} refused RETR {number}: {reply}; the message stays on the server and is "
        "fetched again on the next run",
        server=server,
        number=number,
        reply=reply_text(event),
    )


def dele_refused(server: str, number: int, event: Event) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{server} refused DELE {number}: {reply}; the messages stay on the server and are "
        "deleted on a later run (check the mailbox's permissions if this repeats)",
        server=server,
        number=number,
        reply=reply_text(event),
    )


def quit_refused(server: str, event: Event) -> TransportError:
    return TransportError(
        "{server} could not finish the session: {reply}; the messages to delete stay on the "
        "server and are deleted on a later run",
        server=server,
        reply=reply_text(event),
    )


def closed_by_server(server: str) -> TransportError:
    return TransportError(
        "{server} closed the connection; check the network and any firewall, then try again",
        server=server,
    )


def closed(server: str) -> TransportError:
    return TransportError("the connection to {server} is closed; connect again", server=server)


def unusable(server: str) -> TransportError:
    return TransportError(
        "the connection to {server} is no longer usable after an earlier failure; connect again",
        server=server,
    )
