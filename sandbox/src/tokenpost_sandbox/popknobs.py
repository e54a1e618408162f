"""The sandbox POP3 server's knobs (DIR/knobs.json) and the server styles it imitates.

    {"style": "standard" | "exchange" | "google",
     "passwords": {"account": "password"},
     "static_tokens": {"account": "token"},     accepted besides the authorization server's
     "stls": true,                              offer STLS on the plain port
     "drop_retr_after": 1000,                   close the connection after N octets of RETR data
     "oversized": "greeting" | "retr"}          a 600-octet greeting / a 70 KiB data line

Every key is optional; an absent file means all defaults. The styles follow protocols.md §1.12
(Exchange Online: `+ ` then the blob, no error challenge, its exact reply texts; an initial
response on the AUTH line fails) and §2.7 (Gmail: Google's JSON error challenge, then `-ERR`).
"standard" behaves like Dovecot: RFC 7628 / Google-style error challenges and RFC 3206 codes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from tokenpost.secret import Secret

KNOBS_FILE: Final = "knobs.json"
GOOGLE_ERROR_CHALLENGE: Final = (
    "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8i"
    "fQ=="
)
BEARER_ERROR_CHALLENGE: Final = base64.b64encode(
    json.dumps({"status": "invalid_token", "scope": "mail"}).encode("ascii")
).decode("ascii")


class Style(StrEnum):
    STANDARD = "standard"
    EXCHANGE = "exchange"
    GOOGLE = "google"


@dataclass(frozen=True, slots=True)
class PopKnobs:
    style: Style = Style.STANDARD
    passwords: Mapping[str, Secret] = field(default_factory=dict)
    static_tokens: Mapping[str, Secret] = field(default_factory=dict)
    stls: bool = True
    drop_retr_after: int | None = None
    oversized: str = ""

    @classmethod
    def load(cls, path: Path) -> PopKnobs:
        """The knobs in `path`; the defaults when it does not exist.

        Raises:
            ValueError: not JSON, or a value of the wrong kind.
        """
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        drop = raw.get("drop_retr_after")
        if drop is not None and (isinstance(drop, bool) or not isinstance(drop, int)):
            raise ValueError("drop_retr_after must be an integer or null")
        return cls(
            style=Style(raw.get("style", "standard")),
            passwords=_accounts(raw.get("passwords", {})),
            static_tokens=_accounts(raw.get("static_tokens", {})),
            stls=bool(raw.get("stls", True)),
            drop_retr_after=drop,
            oversized=str(raw.get("oversized") or ""),
        )

    def password_of(self, account: str) -> Secret | None:
        return self.passwords.get(account.casefold())

    def static_token_of(self, account: str) -> Secret | None:
        return self.static_tokens.get(account.casefold())


def _accounts(raw: object) -> dict[str, Secret]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
    ):
        raise ValueError("passwords and static_tokens map accounts to non-empty strings")
    return {account.casefold(): Secret(value) for account, value in raw.items()}


@dataclass(frozen=True, slots=True)
class Profile:
    """What a style says and allows."""

    greeting: str  # "{timestamp}" is replaced by the APOP timestamp
    capabilities: tuple[str, ...]  # STLS is added while it is available
    mechanisms: frozenset[str]
    inline_response: bool  # an initial response on the AUTH line is accepted
    error_challenge: bool  # a refused bearer token first gets a JSON error challenge
    success: str  # "{user}" is replaced
    failure: str
    failure_code: str

    def challenge_for(self, mechanism: str) -> str:
        """The base64 JSON error challenge for a refused bearer token."""
        if mechanism == "OAUTHBEARER" and self is not PROFILES[Style.GOOGLE]:
            return BEARER_ERROR_CHALLENGE
        return GOOGLE_ERROR_CHALLENGE


PROFILES: Final = {
    Style.STANDARD: Profile(
        greeting="tokenpost sandbox POP3 ready. {timestamp}",
        capabilities=(
            "UIDL",
            "USER",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "SASL XOAUTH2 OAUTHBEARER PLAIN",
        ),
        mechanisms=frozenset({"XOAUTH2", "OAUTHBEARER", "PLAIN"}),
        inline_response=True,
        error_challenge=True,
        success="Logged in as {user}.",
        failure="Authentication failed.",
        failure_code="AUTH",
    ),
    Style.EXCHANGE: Profile(
        greeting="The Microsoft Exchange POP3 service is ready. [U0FOREJPWA==]",
        capabilities=("UIDL", "SASL PLAIN XOAUTH2"),
        mechanisms=frozenset({"XOAUTH2", "PLAIN"}),
        inline_response=False,
        error_challenge=False,
        success="User successfully authenticated.",
        failure="Authentication failure: unknown user name or bad password.",
        failure_code="",
    ),
    Style.GOOGLE: Profile(
        greeting="Gpop ready for requests from 127.0.0.1 s4ndb0x",
        capabilities=("USER", "RESP-CODES", "EXPIRE 0", "UIDL", "SASL PLAIN XOAUTH2"),
        mechanisms=frozenset({"XOAUTH2", "PLAIN"}),
        inline_response=True,
        error_challenge=True,
        success="Welcome.",
        failure="Invalid credentials.",
        failure_code="AUTH",
    ),
}
