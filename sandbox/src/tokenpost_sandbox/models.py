"""The sandbox authorization server's vocabulary: clients, faults, stored records, stats.

Records are frozen values; `store.SandboxStore` replaces them under its lock. The small methods on
`Client`, `DeviceRecord`, `CodeRecord`, `RefreshRecord` and `TokenLookup` are the duck-typed model
interfaces authlib's server grants call (`authlib.oauth2.rfc6749.models`, `rfc8628.models`).
Knobs live in `knobs.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from tokenpost.secret import Secret

DEVICE_CODE_GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:device_code"
ACCESS_TOKEN_PREFIX: Final = "sbx_at_"  # noqa: S105  (a prefix, not a secret)
REFRESH_TOKEN_PREFIX: Final = "sbx_rt_"  # noqa: S105  (a prefix, not a secret)
DEFAULT_USER: Final = "alice@example.test"
# What tokenpost's presets register (Microsoft http://localhost; Google and generic
# http://127.0.0.1), and the sandbox's own tests' path.
DEFAULT_REDIRECT_URIS: Final = ("http://127.0.0.1", "http://localhost", "http://127.0.0.1/callback")
# A loopback redirect matches whatever port the app opened at request time (RFC 8252 §7.3), and
# Microsoft treats http://localhost so too (protocols.md §1.7); everything else (scheme, host,
# path, a trailing slash) must match exactly, as at Microsoft (RFC 9700 §2.1).
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "[::1]", "localhost"})


class Endpoint(StrEnum):
    """Every non-control endpoint; the keys of `stats.requests`."""

    METADATA = "metadata"
    DEVICE = "device"
    TOKEN = "token"  # noqa: S105  (an endpoint name)
    AUTHORIZE = "authorize"
    REVOKE = "revoke"
    INTROSPECT = "introspect"
    ACTIVATE = "activate"


FAULTABLE_ENDPOINTS: Final = frozenset(
    {Endpoint.METADATA, Endpoint.DEVICE, Endpoint.TOKEN, Endpoint.REVOKE, Endpoint.INTROSPECT}
)


class FaultKind(StrEnum):
    """A canned wrong answer that replaces the next requests to one endpoint."""

    HTTP_503 = "http_503"
    NON_JSON = "non_json"
    OVERSIZED = "oversized"
    MISSING_ACCESS_TOKEN = "missing_access_token"  # noqa: S105  (a fault name)
    INVALID_GRANT = "invalid_grant"
    INVALID_CLIENT = "invalid_client"
    SLOW_DOWN = "slow_down"


class BrowserDecision(StrEnum):
    """What the "browser" at /authorize does: decide at once, or show a person the sign-in page."""

    APPROVE = "approve"
    DENY = "deny"
    INTERACTIVE = "interactive"


class GrantKind(StrEnum):
    """Short names of the grant types, the keys of `stats.grants_by_type`."""

    DEVICE_CODE = "device_code"
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105  (a grant type name)
    CLIENT_CREDENTIALS = "client_credentials"

    @classmethod
    def from_grant_type(cls, grant_type: str) -> GrantKind:
        """The kind for an RFC 6749 `grant_type` value (the device grant's is a URN)."""
        if grant_type == DEVICE_CODE_GRANT_TYPE:
            return cls.DEVICE_CODE
        return cls(grant_type)


class RevokeReason(StrEnum):
    """Why a grant or token stopped working, as listed in `stats.revoked`."""

    REVOCATION = "revocation"  # an RFC 7009 request
    REPLAY = "replay"  # a rotated refresh token came back (RFC 9700 §4.14)
    REVOKE_USER = "revoke_user"  # the control API revoked every grant of a user


class TokenKind(StrEnum):
    ACCESS = "access_token"
    REFRESH = "refresh_token"


class DeviceDecision(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class PageDecision(StrEnum):
    """What became of a decision a person made on the verification page."""

    DECIDED = "decided"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ALREADY_DECIDED = "already_decided"


class PollOutcome(StrEnum):
    """The answer to one device-code poll (RFC 8628 §3.5), decided atomically by the store."""

    UNKNOWN = "unknown"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    DENIED = "denied"
    SLOW_DOWN = "slow_down"
    PENDING = "pending"
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class User:
    """A resource owner; `account` is what introspection reports as `sub`."""

    account: str

    def get_user_id(self) -> str:
        return self.account


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client (RFC 6749 §2) with the methods of authlib's `ClientMixin`."""

    client_id: str
    secret: Secret | None
    auth_methods: frozenset[str]
    grant_types: frozenset[str]
    redirect_uris: tuple[str, ...] = ()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # A native app always names its loopback redirect; there is no default to fall back on.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        registered = {_without_loopback_port(uri) for uri in self.redirect_uris}
        return _without_loopback_port(redirect_uri) in registered

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and self.secret == Secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def _without_loopback_port(uri: str) -> str:
    """`http://127.0.0.1:<port>/p` → `http://127.0.0.1/p` (also for [::1] and localhost); any
    other URI unchanged."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        return uri
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if parts.scheme != "http" or host not in _LOOPBACK_HOSTS:
        return uri
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device authorization (RFC 8628 §3.2); `interval` grows by 5 s on each slow_down."""

    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    decision: DeviceDecision = DeviceDecision.PENDING
    user: User | None = None
    redeemed: bool = False

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """One authorization code (RFC 6749 §4.1.2) with its PKCE challenge (RFC 7636 §4.4)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A grant family: every access and refresh token descended from one authorization."""

    grant_id: str
    kind: GrantKind
    client_id: str
    user: User | None
    scope: str
    revoked: RevokeReason | None = None


@dataclass(frozen=True, slots=True)
class AccessRecord:
    token: str
    grant_id: str
    scope: str
    expires_at: float
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """A refresh token; `rotated` once it has been exchanged under rotation (RFC 9700 §4.14)."""

    token: str
    grant_id: str
    client_id: str
    scope: str
    user: User | None
    rotated: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class TokenLookup:
    """A token as seen at one instant, for revocation (RFC 7009) and introspection (RFC 7662)."""

    kind: TokenKind
    token: str
    grant_id: str
    client_id: str
    user: User | None
    scope: str
    expires_at: float | None
    expired: bool
    revoked: bool

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return self.expired

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    remaining: int


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One line of `stats.revoked`: which grant went, whose, and why (no token values)."""

    grant_id: str
    client_id: str
    user: str | None
    reason: RevokeReason
    token_kind: TokenKind | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """What `GET /control/stats` reports."""

    requests: Mapping[Endpoint, int]
    grants_by_type: Mapping[GrantKind, int]
    refresh_replays: int
    revoked: tuple[RevokedEntry, ...]
    active_access_tokens: int

    def to_json(self) -> dict[str, object]:
        return {
            "requests": {e.value: n for e, n in self.requests.items()},
            "grants_by_type": {k.value: n for k, n in self.grants_by_type.items()},
            "refresh_replays": self.refresh_replays,
            "revoked": [
                {
                    "grant_id": r.grant_id,
                    "client_id": r.client_id,
                    "user": r.user,
                    "reason": r.reason.value,
                    "token_kind": None if r.token_kind is None else r.token_kind.value,
                }
                for r in self.revoked
            ],
            "active_access_tokens": self.active_access_tokens,
        }
