"""Login throttling: repeated failed logins lock the account and the client address for a while.

Two counters, each over a sliding window: failures per account name (an attacker guessing one
account's password from many addresses) and per client address (one address trying many
accounts). When either reaches its limit, that key is locked for `lock_s` seconds: every login
for it is refused without looking at the password, so a locked account costs no password hash
and tells nothing about whether the password was right. A successful login clears the account's
failures (not the address's: an attacker must not reset its own counter with one account it
knows).

Account names are compared case-folded, so "Admin" and "admin" share one counter. The state is in
memory, per process: a restart forgets it (and every session with it). Memory is bounded: keys
whose failures have all left the window are dropped, and at most `max_keys` keys are kept.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Final, Literal

log = logging.getLogger("tokenpost.web")

MAX_KEYS: Final = 10_000

Kind = Literal["account", "address"]


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """At most `per_account` failures for one account name and `per_address` for one client
    address within `window_s` seconds; the next locks that key for `lock_s` seconds."""

    per_account: int = 5
    per_address: int = 20
    window_s: float = 900.0
    lock_s: float = 900.0


@dataclass
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    policy: LockoutPolicy = field(default_factory=LockoutPolicy)
    max_keys: int = MAX_KEYS
    _counters: dict[tuple[Kind, str], _Counter] = field(default_factory=dict)

    def locked_until(self, account: str, address: str, now: float) -> float | None:
        """When the later of the two locks ends, or None when neither key is locked."""
        ends = [
            counter.locked_until
            for key in self._keys(account, address)
            if (counter := self._counters.get(key)) is not None and counter.locked_until > now
        ]
        return max(ends) if ends else None

    @staticmethod
    def _keys(account: str, address: str) -> tuple[tuple[Kind, str], ...]:
        return (("account", account.casefold()), ("address", address))

    def failed(self, account: str, address: str, now: float) -> None:
        """Count one failed login; a key that reaches its limit is locked (and logged)."""
        self._prune(now)
        keys: tuple[tuple[Kind, str, int], ...] = (
            ("account", account.casefold(), self.policy.per_account),
            ("address", address, self.policy.per_address),
        )
        for kind, key, limit in keys:
            counter = self._counters.setdefault((kind, key), _Counter())
            counter.failures.append(now)
            self._forget_old(counter, now)
            if len(counter.failures) >= limit and counter.locked_until <= now:
                counter.locked_until = now + self.policy.lock_s
                counter.failures.clear()
                self._log_lockout(kind, key)

    def succeeded(self, account: str) -> None:
        """A successful login clears its account's failures (never a lock: it was checked)."""
        self._counters.pop(("account", account.casefold()), None)

    def _log_lockout(self, kind: Kind, key: str) -> None:
        minutes = round(self.policy.lock_s / 60)
        if kind == "account":
            log.warning(
                "web login: too many failed logins for account %r; locked for %s min",
                key,
                minutes,
            )
        else:
            log.warning(
                "web login: too many failed logins from address %r; locked for %s min",
                key,
                minutes,
            )

    def _forget_old(self, counter: _Counter, now: float) -> None:
        while counter.failures and counter.failures[0] <= now - self.policy.window_s:
            counter.failures.popleft()

    def _prune(self, now: float) -> None:
        for key, counter in list(self._counters.items()):
            self._forget_old(counter, now)
            if not counter.failures and counter.locked_until <= now:
                del self._counters[key]
        while len(self._counters) > max(0, self.max_keys - 2):  # room for this failure's two
            # Bounded memory under a flood of names or addresses: the oldest unlocked key goes.
            oldest = next(
                (k for k, c in self._counters.items() if c.locked_until <= now),
                next(iter(self._counters)),
            )
            del self._counters[oldest]
