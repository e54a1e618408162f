"""A fake of our own port `ports.Pop3Connector`: a POP3 maildrop in memory with RFC 1939's
transaction rules (DELE only marks, a successful QUIT removes, a session ending any other way
removes nothing), SASL checked by decoding what our SASL clients send."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenpost.errors import MailAuthError, RemoteProtocolError, TransportError
from tokenpost.ports import StepCallback, no_steps
from tokenpost.sasl import SaslClient
from tokenpost.secret import Secret
from tokenpost.settings.model import PopSetting

OAUTH_CAPABILITIES = frozenset({"UIDL", "TOP", "SASL", "SASL XOAUTH2", "SASL OAUTHBEARER"})


class Pop3Crash(BaseException):
    """Raised at an injected point: the process dies there (nothing catches a BaseException)."""


@dataclass
class FakeMaildrop:
    messages: dict[str, bytes] = field(default_factory=dict)  # UIDL -> message, in order
    capabilities: frozenset[str] = OAUTH_CAPABILITIES
    apop_timestamp: str | None = None
    tokens: set[str] = field(default_factory=set)  # accepted bearer tokens
    passwords: dict[str, str] = field(default_factory=dict)
    uidl_supported: bool = True
    broken_retr: set[str] = field(default_factory=set)  # UIDLs whose RETR drops halfway
    quit_fails: bool = False
    chunk: int = 1000
    # (mechanism or verb, user, token or password) of every authentication attempt
    attempts: list[tuple[str, str, str]] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)
    connections: int = 0
    # Called with a point name ("retr", "dele", "quit") before it happens: may raise Pop3Crash.
    crash_hook: Callable[[str], None] = lambda point: None

    def add(self, uidl: str, data: bytes) -> None:
        self.messages[uidl] = data


class FakeConnector:
    def __init__(self, maildrop: FakeMaildrop) -> None:
        self.maildrop = maildrop
        self.sessions: list[FakeSession] = []

    async def connect(
        self,
        setting: PopSetting,
        *,
        timeout: float = 60.0,
        on_step: StepCallback = no_steps,
    ) -> FakeSession:
        self.maildrop.connections += 1
        session = FakeSession(self.maildrop)
        self.sessions.append(session)
        return session


class FakeSession:
    def __init__(self, maildrop: FakeMaildrop) -> None:
        self._drop = maildrop
        self._numbers = dict(enumerate(maildrop.messages, start=1))
        self.marked: set[int] = set()
        self.user: str | None = None
        self.closed = False
        self.quitted = False

    @property
    def capabilities(self) -> frozenset[str]:
        return self._drop.capabilities

    @property
    def apop_timestamp(self) -> str | None:
        return self._drop.apop_timestamp

    async def authenticate(self, client: SaslClient) -> None:
        # Two-line form: the server's first challenge is empty, the answer is the client-first.
        blob = base64.b64decode(client.respond("").reveal()).decode()
        user, credential = _decode_sasl(client.mechanism, blob)
        self._drop.attempts.append((client.mechanism, user, credential))
        known = self._drop.tokens if client.mechanism != "PLAIN" else set()
        if credential in known or self._drop.passwords.get(user) == credential:
            self.user = user
            return
        raise MailAuthError("-ERR [AUTH] Authentication failed.", reply="-ERR [AUTH]")

    async def login(self, user: str, password: Secret) -> None:
        self._drop.attempts.append(("USER", user, password.reveal()))
        if self._drop.passwords.get(user) != password.reveal():
            raise MailAuthError("-ERR [AUTH] Authentication failed.", reply="-ERR [AUTH]")
        self.user = user

    async def apop(self, user: str, password: Secret) -> None:
        self._drop.attempts.append(("APOP", user, password.reveal()))
        if self._drop.passwords.get(user) != password.reveal():
            raise MailAuthError("-ERR [AUTH] Authentication failed.", reply="-ERR [AUTH]")
        self.user = user

    async def uidl(self) -> dict[int, str]:
        self._authorized()
        if not self._drop.uidl_supported:
            raise RemoteProtocolError("pop.example.test:995 does not support UIDL: -ERR")
        return dict(self._numbers)

    async def retrieve(self, number: int, sink: Callable[[bytes], None]) -> int:
        self._authorized()
        self._drop.crash_hook("retr")
        uidl = self._numbers[number]
        data = self._drop.messages[uidl]
        self._drop.retrieved.append(uidl)
        size = self._drop.chunk
        for start in range(0, len(data), size):
            if uidl in self._drop.broken_retr and start >= len(data) // 2:
                raise TransportError("pop.example.test:995 closed the connection")
            sink(data[start : start + size])
            self._drop.crash_hook("retr-chunk")
        return len(data)

    async def delete(self, number: int) -> None:
        self._authorized()
        self._drop.crash_hook("dele")
        self.marked.add(number)

    async def quit(self) -> None:
        self._drop.crash_hook("quit")
        if self._drop.quit_fails:
            raise TransportError("pop.example.test:995 closed the connection")
        for number in self.marked:
            self._drop.messages.pop(self._numbers[number], None)
        self.quitted = True

    async def close(self) -> None:
        self.closed = True

    def _authorized(self) -> None:
        if self.user is None:
            raise RemoteProtocolError("-ERR not authenticated")


def _decode_sasl(mechanism: str, blob: str) -> tuple[str, str]:
    if mechanism == "PLAIN":
        _, user, password = blob.split("\0")
        return user, password
    fields = blob.split("\x01")
    if mechanism == "XOAUTH2":
        user = fields[0].removeprefix("user=")
    else:  # OAUTHBEARER: "n,a=user,"
        user = fields[0].split(",")[1].removeprefix("a=")
    auth = next(f for f in fields if f.startswith("auth="))
    return user, auth.removeprefix("auth=Bearer ")
