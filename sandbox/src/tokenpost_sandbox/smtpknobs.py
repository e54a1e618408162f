"""The sandbox SMTP server's knobs: DIR/knobs.json, read afresh for every connection.

    {"style": "microsoft" | "google",
     "policy": {"account": "tenant" | "mailbox" | "security_defaults"},
     "basic_retired": false,
     "passwords": {"account": "password"},
     "static_tokens": {"account": "token"},
     "reject_rcpt": ["address"],
     "drop_after_data_bytes": 1024,
     "size_limit": 10000}

Every key is optional; an absent file means all defaults. Accounts and addresses compare
case-insensitively. `static_tokens` are accepted besides the authorization server's tokens: the
sandbox issues short tokens, real providers issue tokens of several kilobytes. `size_limit` is
the SIZE the server advertises and enforces (RFC 1870; absent: aiosmtpd's 32 MiB, 0: no SIZE).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.secret import Secret

KNOBS_FILE: Final = "knobs.json"


class Style(StrEnum):
    """Whose byte-level behaviour the server imitates (protocols.md §1.11, §2.7)."""

    MICROSOFT = "microsoft"
    GOOGLE = "google"


class Block(StrEnum):
    """An Exchange policy that refuses SMTP AUTH for an account even with a valid token."""

    TENANT = "tenant"
    MAILBOX = "mailbox"
    SECURITY_DEFAULTS = "security_defaults"


@dataclass(frozen=True, slots=True)
class SmtpKnobs:
    style: Style = Style.GOOGLE
    policy: Mapping[str, Block] = field(default_factory=dict)
    basic_retired: bool = False
    passwords: Mapping[str, Secret] = field(default_factory=dict)
    static_tokens: Mapping[str, Secret] = field(default_factory=dict)
    reject_rcpt: frozenset[str] = frozenset()
    drop_after_data_bytes: int | None = None
    size_limit: int | None = None

    def blocked(self, account: str) -> Block | None:
        return self.policy.get(account.casefold())

    def password_of(self, account: str) -> Secret | None:
        return self.passwords.get(account.casefold())

    def static_token_of(self, account: str) -> Secret | None:
        return self.static_tokens.get(account.casefold())

    def account_of_static_token(self, token: Secret) -> str | None:
        return next((a for a, t in self.static_tokens.items() if t == token), None)

    def rejects(self, address: str) -> bool:
        return address.casefold() in self.reject_rcpt


def load_knobs(path: Path) -> SmtpKnobs:
    """The knobs in `path`, or the defaults when it does not exist.

    Raises:
        ValidationError: the file is not JSON, or a key or value is wrong (all reported at once).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SmtpKnobs()
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValidationError([FieldProblem(path.name, f"is not JSON ({exc})")]) from None
    return parse_knobs(raw)


def parse_knobs(raw: object) -> SmtpKnobs:
    """Knobs from decoded JSON.

    Raises:
        ValidationError: a key or value is wrong (all reported at once).
    """
    if not isinstance(raw, dict):
        raise ValidationError([FieldProblem("knobs", "must be a JSON object")])
    problems: list[FieldProblem] = []
    values: dict[str, object] = {}
    for name, value in raw.items():
        parse = _PARSERS.get(name)
        if parse is None:
            problems.append(FieldProblem(str(name), "is not a knob"))
            continue
        try:
            values[name] = parse(value)
        except (TypeError, ValueError) as exc:
            problems.append(FieldProblem(name, str(exc)))
    if problems:
        raise ValidationError(problems, subject="smtp knobs")
    return SmtpKnobs(**values)  # type: ignore[arg-type]  # each parser returns its field's type


def _style(raw: object) -> Style:
    if not isinstance(raw, str):
        raise TypeError("must be a string")
    return Style(raw)


def _boolean(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("must be true or false")
    return raw


def _by_account(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in raw.items()
    ):
        raise TypeError("must map accounts to non-empty strings")
    return {k.casefold(): v for k, v in raw.items()}


def _policy(raw: object) -> dict[str, Block]:
    return {account: Block(value) for account, value in _by_account(raw).items()}


def _secrets(raw: object) -> dict[str, Secret]:
    return {account: Secret(value) for account, value in _by_account(raw).items()}


def _addresses(raw: object) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(a, str) and a for a in raw):
        raise TypeError("must be a list of addresses")
    return frozenset(a.casefold() for a in raw)


def _optional_size(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError("must be an integer >= 0 or null")
    return raw


_PARSERS: Final[dict[str, Callable[[object], object]]] = {
    "style": _style,
    "policy": _policy,
    "basic_retired": _boolean,
    "passwords": _secrets,
    "static_tokens": _secrets,
    "reject_rcpt": _addresses,
    "drop_after_data_bytes": _optional_size,
    "size_limit": _optional_size,
}
