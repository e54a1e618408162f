"""Every failure of the POP3 client adapter names the server and the fix, in English and German,
with every placeholder filled (an error's own keyword fields, such as MailAuthError's `reply`,
are not message parameters)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest

from tokenpost.adapters import pop3_failures as fail
from tokenpost.errors import MailAuthError, RemoteProtocolError, TokenpostError, TransportError
from tokenpost.i18n import translator
from tokenpost.pop3.events import ConnectionClosed, Err, MultilineEnd
from tokenpost.pop3.wire import LocalProtocolError
from tokenpost.sasl import xoauth2
from tokenpost.secret import Secret
from tokenpost.settings.network import Trust, TrustSource
from tokenpost.text import Text

SERVER = "pop.example.test:995"
TRUST = Trust(TrustSource.CA_FILE, "/etc/ca.pem")
GERMAN = translator("de").gettext
REFUSED = Err("[AUTH] Authentication failed.", "AUTH")


def verify_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


FAILURES: list[Callable[[], TokenpostError | None]] = [
    lambda: fail.io_failure(SERVER, TimeoutError(), timeout=2.5, trust=TRUST),
    lambda: fail.io_failure(SERVER, verify_error(), timeout=1, trust=TRUST),
    lambda: fail.io_failure(
        SERVER, ssl.SSLError(1, "wrong version number"), timeout=1, trust=TRUST
    ),
    lambda: fail.io_failure(SERVER, ConnectionRefusedError(111, "Refused"), timeout=1, trust=TRUST),
    lambda: fail.io_failure(SERVER, socket.gaierror(-2, "Name unknown"), timeout=1, trust=TRUST),
    lambda: fail.io_failure(SERVER, OSError(101, "Network is unreachable"), timeout=1, trust=TRUST),
    lambda: fail.broken_protocol(
        SERVER, RemoteProtocolError("line longer than {limit} octets", limit=9)
    ),
    lambda: fail.auth_refused(SERVER, REFUSED, "USER"),
    lambda: fail.auth_refused(SERVER, REFUSED, "XOAUTH2", xoauth2("u@x", Secret("tok"))),
    lambda: fail.auth_refused(SERVER, Err("[IN-USE] busy", "IN-USE"), fail.GREETING),
    lambda: fail.unexpected(SERVER, ConnectionClosed(), fail.GREETING),
    lambda: fail.unexpected(SERVER, MultilineEnd(), "RETR"),
    lambda: fail.no_stls(SERVER),
    lambda: fail.stls_refused(SERVER, Err("not now")),
    lambda: fail.too_many_challenges(SERVER),
    lambda: fail.no_apop(SERVER),
    lambda: fail.unsendable("PASS", LocalProtocolError(Text("PASS: an argument holds a space"))),
    lambda: fail.no_uidl(SERVER, Err("unknown command")),
    lambda: fail.bad_listing(SERVER, 3),
    lambda: fail.retr_refused(SERVER, 3, Err("no such message")),
    lambda: fail.dele_refused(SERVER, 3, Err("read-only mailbox")),
    lambda: fail.quit_refused(SERVER, Err("some deleted messages not removed")),
    lambda: fail.closed_by_server(SERVER),
    lambda: fail.closed(SERVER),
    lambda: fail.unusable(SERVER),
]


@pytest.mark.parametrize("make", FAILURES)
def test_every_failure_is_complete_in_both_languages(
    make: Callable[[], TokenpostError | None],
) -> None:
    error = make()
    assert error is not None
    english, german = str(error), error.translate(GERMAN)
    for shown in (english, german):
        assert "{" not in shown
        assert "\n" not in shown
    assert german != english
    assert "; " in english  # what happened; what to do


def test_a_refused_token_keeps_reply_and_status_as_fields() -> None:
    error = fail.auth_refused(SERVER, REFUSED, "XOAUTH2", xoauth2("u@x", Secret("tok")))
    assert isinstance(error, MailAuthError)
    assert error.reply == "-ERR [AUTH] Authentication failed."
    assert str(error) == (
        "pop.example.test:995 refused authentication (XOAUTH2): -ERR [AUTH] Authentication "
        "failed.; check the account, that POP is enabled for the mailbox, and that the token was "
        "obtained for this account (tokenpost token get)"
    )


def test_a_temporary_refusal_says_try_later_in_german() -> None:
    error = fail.auth_refused(SERVER, Err("[IN-USE] busy", "IN-USE"), fail.GREETING)
    assert isinstance(error, TransportError)
    assert error.translate(GERMAN) == (
        "pop.example.test:995 ist gerade nicht verfügbar (die Begrüßung): -ERR [IN-USE] busy; "
        "versuchen Sie es später erneut"
    )
