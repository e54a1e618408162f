"""SASL client mechanisms for SMTP (RFC 4954) and POP3 (RFC 5034), with no I/O.

    client = xoauth2("user@example.com", token)
    line, inline = auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)
    # send line; on each "334 <b64>" / "+ <b64>" challenge send client.respond(b64)
    # afterwards client.error holds the parsed OAuth error challenge, if the server sent one

An exchange has one of two shapes, and every client handles both:
- one step: the initial response rides on the AUTH line, because it fits the command limit;
- two steps: the AUTH line names the mechanism only, the server's first challenge is empty
  ("334 ", "+ ") and the client answers it with the initial response.

Invariant: a credential leaves a client at most once. Once the initial response is out, a further
XOAUTH2 or OAUTHBEARER challenge can only be an error challenge (Google's JSON, RFC 7628 §3.2.2):
it is kept in `error` and acknowledged with an empty line (XOAUTH2) or %x01 (OAUTHBEARER), and the
server's final failure reply follows. Any other challenge is a `RemoteProtocolError` whose message
holds no challenge text, so a server echoing a credential cannot get it into a log.

Values are base64 text in and out; everything that carries a credential is a `Secret`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from tokenpost.errors import FieldProblem, RemoteProtocolError, ValidationError
from tokenpost.oauth.rfc6749 import sanitize_text
from tokenpost.secret import Secret
from tokenpost.text import Text

__all__ = [
    "MAX_CHALLENGE",
    "POP3_COMMAND_LIMIT",
    "SMTP_COMMAND_LIMIT",
    "ErrorChallenge",
    "SaslClient",
    "apop_digest",
    "auth_command",
    "login",
    "oauthbearer",
    "plain",
    "xoauth2",
]

SMTP_COMMAND_LIMIT: Final = 512  # octets including CRLF (RFC 5321 §4.5.3.1.4, RFC 4954 §4)
POP3_COMMAND_LIMIT: Final = 255  # octets including CRLF (RFC 2449 §4, RFC 5034 §4)
MAX_CHALLENGE: Final = 16 * 1024  # characters of base64; real error challenges are < 300
_FIELD_LIMIT: Final = 200  # characters kept of each error-challenge field
_CRLF: Final = 2

# RFC 1939 §7: the greeting's msg-id, brackets included; bounded by the 512-octet reply line.
_APOP_TIMESTAMP: Final = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,500}>")
# LOGIN has no specification: these are the prompts servers send, with draft-murchison's
# "User Name"; anything else is answered by order.
_LOGIN_PROMPTS: Final = {"username": "user", "user name": "user", "password": "password"}


@dataclass(frozen=True, slots=True)
class ErrorChallenge:
    """An OAuth error challenge (RFC 7628 §3.2.2; Google's XOAUTH2 JSON): `status` is e.g.
    "invalid_token" or "400"; `scope` and `openid_configuration` may be empty.

    Every field is server text made safe to show (printable, at most 200 characters); `status`
    is "" when the challenge was not a JSON object with a status."""

    status: str
    scope: str = ""
    openid_configuration: str = ""


class SaslClient(ABC):
    """One client-side SASL exchange. Not reusable: make a new one per AUTH attempt.

    `repr` and `str` show the mechanism only, never the user or a credential."""

    mechanism: str
    error: ErrorChallenge | None

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.error = None

    @abstractmethod
    def initial_response(self) -> Secret | None:
        """The base64 client-first message; None for server-first mechanisms (LOGIN).

        Returning it records it as sent: call this only to put the result on the AUTH line (or
        let `auth_command` do it). A second call raises RuntimeError.
        """

    @abstractmethod
    def respond(self, challenge: str) -> Secret:
        """The base64 reply to a server challenge (the text after "334 " or "+ ").

        Raises:
            RemoteProtocolError: the challenge is over `MAX_CHALLENGE` characters, not base64,
                or one more than the mechanism allows.
        """

    def _inline(self, room: int) -> Secret | None:
        """The initial response, recorded as sent, if there is one and it fits in `room`
        characters (an empty one counts as the single "=" RFC 4954 sends for it)."""
        return None

    def __repr__(self) -> str:
        return f"SaslClient(mechanism={self.mechanism!r})"


class _Step(Enum):
    READY = auto()  # the initial response has not been sent
    SENT = auto()  # it has: only an error challenge may follow
    DONE = auto()  # the error challenge is acknowledged: the server's final reply is next


class _ClientFirst(SaslClient):
    """A mechanism whose whole credential is the initial response: XOAUTH2, OAUTHBEARER, PLAIN.

    `ack` answers the error challenge; None for mechanisms that have none (PLAIN)."""

    def __init__(self, mechanism: str, message: bytes, *, ack: bytes | None) -> None:
        super().__init__(mechanism)
        self._message = _base64(message)
        self._ack = None if ack is None else _base64(ack)
        self._step = _Step.READY

    def initial_response(self) -> Secret:
        if self._step is not _Step.READY:
            raise RuntimeError(f"{self.mechanism}: the initial response was already sent")
        self._step = _Step.SENT
        return self._message

    def respond(self, challenge: str) -> Secret:
        data = _decode(self.mechanism, challenge)
        if self._step is _Step.READY:
            if data:
                raise RemoteProtocolError(
                    "{mechanism}: the server's first challenge was not empty",
                    mechanism=self.mechanism,
                )
            return self.initial_response()
        if self._step is _Step.SENT and self._ack is not None:
            self._step = _Step.DONE
            self.error = _error_challenge(data)
            return self._ack
        raise _one_too_many(self.mechanism)

    def _inline(self, room: int) -> Secret | None:
        if self._step is _Step.READY and max(len(self._message), 1) <= room:
            return self.initial_response()
        return None


class _Login(SaslClient):
    """LOGIN: server-first; the user and the password each answer one prompt."""

    def __init__(self, user: str, password: Secret) -> None:
        super().__init__("LOGIN")
        # Insertion order is the answer order for prompts we do not recognise.
        self._pending = {
            "user": _base64(_utf8(user, "account")),
            "password": _base64(_utf8(password.reveal(), "password")),
        }

    def initial_response(self) -> None:
        return None

    def respond(self, challenge: str) -> Secret:
        prompt = _decode(self.mechanism, challenge).decode("utf-8", "replace")
        if not self._pending:
            raise _one_too_many(self.mechanism)
        wanted = _LOGIN_PROMPTS.get(prompt.strip(" \t\r\n\x00:").lower())
        if wanted is None:
            wanted = next(iter(self._pending))
        elif wanted not in self._pending:
            if wanted == "user":
                raise RemoteProtocolError("LOGIN: the server asked for the user name twice")
            raise RemoteProtocolError("LOGIN: the server asked for the password twice")
        return self._pending.pop(wanted)


def xoauth2(user: str, token: Secret) -> SaslClient:
    """XOAUTH2 (Google, Microsoft): base64 of ``user=<user>^Aauth=Bearer <token>^A^A``.

    Raises:
        ValidationError: `user` has control characters.
        RemoteProtocolError: the provider's token has characters SASL cannot carry.
    """
    _require_printable(user, "account")
    message = f"user={user}\x01auth=Bearer {_bearer(token)}\x01\x01"
    return _ClientFirst("XOAUTH2", message.encode("utf-8"), ack=b"")


def oauthbearer(user: str, token: Secret, host: str, port: int) -> SaslClient:
    """OAUTHBEARER (RFC 7628 §3.1), base64 of
    ``n,a=<user>,^Ahost=<host>^Aport=<port>^Aauth=Bearer <token>^A^A``.

    The user is the GS2 authzid (RFC 5801 §4: "," → "=2C", "=" → "=3D"; "n,," when empty).

    Raises:
        ValidationError: `user` or `host` has control characters, or `port` is not 1-65535.
        RemoteProtocolError: the provider's token has characters SASL cannot carry.
    """
    _require_printable(user, "account")
    _require_printable(host, "server")
    if not 0 < port < 65536:
        raise ValidationError([FieldProblem("port", Text("must be 1-65535"))])
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    gs2_header = f"n,a={authzid}," if user else "n,,"
    message = f"{gs2_header}\x01host={host}\x01port={port}\x01auth=Bearer {_bearer(token)}\x01\x01"
    return _ClientFirst("OAUTHBEARER", message.encode("utf-8"), ack=b"\x01")


def plain(user: str, password: Secret) -> SaslClient:
    """PLAIN (RFC 4616): ``\\0<user>\\0<password>``, no authorization identity.

    Raises:
        ValidationError: `user` or `password` holds NUL or cannot be UTF-8.
    """
    message = b"\0" + _utf8(user, "account") + b"\0" + _utf8(password.reveal(), "password")
    return _ClientFirst("PLAIN", message, ack=None)


def login(user: str, password: Secret) -> SaslClient:
    """LOGIN: no initial response; answers "Username:" and "Password:" prompts (others by order:
    first the user, then the password).

    Raises:
        ValidationError: `user` or `password` cannot be UTF-8.
    """
    return _Login(user, password)


def apop_digest(timestamp: str, password: Secret) -> Secret:
    """The APOP digest (RFC 1939 §7): lower-case hex MD5 of the greeting's timestamp, angle
    brackets included, followed by the password.

    Raises:
        RemoteProtocolError: `timestamp` is not a ``<…>`` msg-id.
        ValidationError: `password` cannot be UTF-8.
    """
    if not _APOP_TIMESTAMP.fullmatch(timestamp):
        raise RemoteProtocolError("the POP3 greeting's APOP timestamp is malformed")
    data = timestamp.encode("ascii") + _utf8(password.reveal(), "password")
    return Secret(hashlib.md5(data, usedforsecurity=False).hexdigest())


def auth_command(verb: str, client: SaslClient, *, limit: int) -> tuple[Secret, bool]:
    """The AUTH command line (no CRLF) and whether it carries the initial response.

    The initial response goes inline only when the whole line, CRLF included, fits in `limit`
    octets (RFC 4954 §4, RFC 5034 §4); otherwise the client sends it on the server's empty
    challenge. Real OAuth tokens (1-4 KB) therefore go two-step on POP3 and usually on SMTP.
    """
    line = f"{verb} {client.mechanism}"
    response = client._inline(limit - len(line) - len(" ") - _CRLF)
    if response is None:
        return Secret(line), False
    return Secret(f"{line} {response.reveal() or '='}"), True


def _base64(data: bytes) -> Secret:
    return Secret(base64.b64encode(data).decode("ascii"))


def _decode(mechanism: str, challenge: str) -> bytes:
    if len(challenge) > MAX_CHALLENGE:
        raise RemoteProtocolError(
            "{mechanism}: the server's challenge is longer than {limit} characters",
            mechanism=mechanism,
            limit=MAX_CHALLENGE,
        )
    text = challenge.strip(" \t\r\n")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError:  # binascii.Error, UnicodeEncodeError
        raise RemoteProtocolError(
            "{mechanism}: the server's challenge is not base64 ({length} characters)",
            mechanism=mechanism,
            length=len(text),
        ) from None


def _error_challenge(data: bytes) -> ErrorChallenge:
    try:
        body = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond the parser
        return ErrorChallenge(status="")
    if not isinstance(body, dict):
        return ErrorChallenge(status="")
    return ErrorChallenge(
        status=_field(body.get("status")),
        scope=_field(body.get("scope")),
        openid_configuration=_field(body.get("openid-configuration")),
    )


def _field(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a server that sends the HTTP-like status as a number
    return sanitize_text(value, limit=_FIELD_LIMIT)


def _one_too_many(mechanism: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{mechanism}: the server sent a challenge after the last answer", mechanism=mechanism
    )


def _bearer(token: Secret) -> str:
    value = token.reveal()
    # A control character (above all %x01) would end the SASL field early.
    if not value.isprintable():
        raise RemoteProtocolError("the access token holds characters SASL cannot carry")
    return value


def _require_printable(value: str, field: str) -> None:
    if not value.isprintable():
        raise ValidationError([FieldProblem(field, Text("must not contain control characters"))])


def _utf8(value: str, field: str) -> bytes:
    if "\0" in value:
        raise ValidationError([FieldProblem(field, Text("must not contain NUL"))])
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError([FieldProblem(field, Text("must be valid Unicode text"))]) from None
