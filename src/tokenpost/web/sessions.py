"""Server-side sessions: a random id in a cookie, everything else in this process's memory.

A session exists before login too (anonymous): it carries the CSRF token of the login form and the
language chosen with the switch. Logging in replaces it with a new id (no fixation), logging out
drops it, and every session of an account ends when the account is removed or its password
changes (`Sessions.drop_account`, and the check on each request in `auth`). A session unused
for `idle_s` seconds ends. Restarting `serve` ends them all.

The cookie carries only the id (256 bits from `secrets`); it is HttpOnly, SameSite=Strict,
Path=/ and Secure (see `WebConfig.secure_cookies`).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

COOKIE: Final = "tokenpost_session"
MAX_SESSIONS: Final = 10_000


@dataclass
class Session:
    """One browser's session. `account` is None before login; `is_admin` is the role the
    account had when it logged in (checked again on every request); `stamp` identifies the
    account's credentials at login (see `auth`); `notices` are shown once on the next page."""

    id: str
    csrf: str
    last_seen: float
    account: str | None = None
    is_admin: bool = False
    stamp: str | None = None
    lang: str | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        return self.account is not None

    def take_notices(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices


@dataclass
class Sessions:
    """The sessions of this process, least recently used first."""

    idle_s: float
    max_sessions: int = MAX_SESSIONS
    _by_id: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def get(self, session_id: str | None, now: float) -> Session | None:
        """The live session with this id (now used), or None; an idle one is dropped."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if now - session.last_seen > self.idle_s:
            del self._by_id[session_id]
            return None
        session.last_seen = now
        self._by_id.move_to_end(session_id)
        return session

    def new(self, now: float, *, lang: str | None = None) -> Session:
        """A new anonymous session."""
        self._sweep(now)
        session = Session(id=_random(), csrf=_random(), last_seen=now, lang=lang)
        self._by_id[session.id] = session
        return session

    def sign_in(
        self, old: Session | None, account: str, *, is_admin: bool, stamp: str | None, now: float
    ) -> Session:
        """A new session (new id, new CSRF token) for `account`; `old` ends. The language
        chosen before login is kept."""
        if old is not None:
            self.drop(old.id)
        session = self.new(now, lang=old.lang if old is not None else None)
        session.account, session.is_admin, session.stamp = account, is_admin, stamp
        return session

    def drop(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def drop_account(self, account: str) -> int:
        """End every session of `account`; returns how many there were."""
        ids = [s.id for s in self._by_id.values() if s.account == account]
        for session_id in ids:
            del self._by_id[session_id]
        return len(ids)

    def __len__(self) -> int:
        return len(self._by_id)

    def _sweep(self, now: float) -> None:
        """Drop idle sessions (the least recently used are first); beyond `max_sessions`, drop
        the least recently used anonymous one, so that a flood of login pages never ends a
        signed-in session (bounded memory whatever a client does)."""
        for session in list(self._by_id.values()):
            if now - session.last_seen <= self.idle_s:
                break
            del self._by_id[session.id]
        while len(self._by_id) >= self.max_sessions:
            victim = next((s for s in self._by_id.values() if not s.signed_in), None)
            if victim is None:
                victim = next(iter(self._by_id.values()))
            del self._by_id[victim.id]


def _random() -> str:
    return secrets.token_urlsafe(32)
