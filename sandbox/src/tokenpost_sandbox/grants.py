# mypy: disallow-subclassing-any=False
# (authlib ships no type information, so every class below extends an `Any` base.)
"""authlib's server grants and endpoints, bound to the sandbox's in-memory store.

- authorization code with PKCE S256 required (RFC 6749 §4.1, RFC 7636 §4; RFC 9700 §2.1.1)
- device authorization and device-code polling (RFC 8628 §3.1-3.5)
- refresh with rotation and replay detection (RFC 6749 §6, RFC 9700 §4.14)
- client credentials for the confidential app (RFC 6749 §4.4)
- revocation (RFC 7009) and introspection for the mail server (RFC 7662)

Every read-then-write decision is delegated to `SandboxStore`, which makes it atomically; the
classes here translate its answers into authlib's errors.
"""

from __future__ import annotations

import time
from typing import Any, Final

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    InvalidGrantError,
    InvalidRequestError,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import (
    AuthorizationPendingError,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    ExpiredTokenError,
    SlowDownError,
)

from tokenpost_sandbox.models import (
    Client,
    CodeRecord,
    DeviceRecord,
    GrantKind,
    PollOutcome,
    RefreshRecord,
    TokenKind,
    TokenLookup,
    User,
)
from tokenpost_sandbox.oauth2_starlette import StarletteAuthorizationServer
from tokenpost_sandbox.store import (
    MAILSERVER_CLIENT_ID,
    IssuedTokens,
    SandboxStore,
    new_tokens,
)

# RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED."
CODE_LIFETIME: Final = 600
TOKEN_AUTH_METHODS: Final = ["client_secret_basic", "client_secret_post", "none"]


class SandboxAuthorizationServer(StarletteAuthorizationServer):
    """authlib's authorization server with every sandbox grant and endpoint registered."""

    def __init__(self, store: SandboxStore, issuer: str) -> None:
        super().__init__()
        self.store = store
        self.issuer = issuer
        self.register_token_generator("default", self._generate_token)
        self.register_grant(SandboxAuthorizationCodeGrant, [S256Required()])
        self.register_grant(SandboxDeviceCodeGrant)
        self.register_grant(SandboxRefreshTokenGrant)
        self.register_grant(SandboxClientCredentialsGrant)
        self.register_endpoint(SandboxDeviceAuthorizationEndpoint)
        self.register_endpoint(SandboxRevocationEndpoint)
        self.register_endpoint(SandboxIntrospectionEndpoint)

    def query_client(self, client_id: str) -> Client | None:
        return self.store.query_client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        parent = request.refresh_token if isinstance(request.refresh_token, RefreshRecord) else None
        self.store.record_issued(
            IssuedTokens(token["access_token"], token.get("refresh_token")),
            kind=GrantKind.from_grant_type(request.payload.grant_type),
            client_id=request.client.client_id,
            user=request.user if isinstance(request.user, User) else None,
            scope=token.get("scope", ""),
            parent=parent,
            now=time.time(),
        )

    def _generate_token(
        self,
        *,
        grant_type: str,
        client: Client,
        user: User | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        knobs = self.store.knobs
        issued = new_tokens(with_refresh=include_refresh_token)
        token: dict[str, Any] = {"token_type": "Bearer", "access_token": issued.access_token}
        if not knobs.omit_expires_in:
            token["expires_in"] = knobs.access_token_lifetime
        if issued.refresh_token is not None:
            token["refresh_token"] = issued.refresh_token
        if scope:
            token["scope"] = scope
        return token


def _server(owner: Any) -> SandboxAuthorizationServer:
    """The server a grant or endpoint belongs to (authlib passes it untyped)."""
    server = owner.server
    if not isinstance(server, SandboxAuthorizationServer):
        raise TypeError("sandbox grants run only inside SandboxAuthorizationServer")
    return server


def _store(owner: Any) -> SandboxStore:
    return _server(owner).store


class S256Required(CodeChallenge):
    """PKCE is mandatory and only S256 is accepted (RFC 9700 §2.1.1; RFC 7636 §4.2)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: Final = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: code_challenge is missing")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class SandboxAuthorizationCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: Final = TOKEN_AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        _store(self).add_code(
            CodeRecord(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                user=request.user,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                expires_at=time.time() + CODE_LIFETIME,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        return _store(self).take_code(code, client.client_id, time.time())

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        # Already gone: `take_code` removes a code on its first presentation, used or not.
        pass

    def authenticate_user(self, authorization_code: CodeRecord) -> User:
        return authorization_code.user


class SandboxDeviceCodeGrant(DeviceCodeGrant):
    """RFC 8628 §3.4-3.5; each poll is decided by `SandboxStore.poll_device`."""

    def query_device_credential(self, device_code: str) -> DeviceRecord:
        record = _store(self).device(device_code)
        if record is None:
            raise InvalidGrantError("unknown device_code")
        return record

    def validate_device_credential(self, credential: DeviceRecord) -> User:
        outcome, user = _store(self).poll_device(credential.device_code, time.time())
        match outcome:
            case PollOutcome.APPROVED if user is not None:
                return user
            case PollOutcome.PENDING:
                raise AuthorizationPendingError()
            case PollOutcome.SLOW_DOWN:
                raise SlowDownError()
            case PollOutcome.DENIED:
                raise AccessDeniedError()
            case PollOutcome.EXPIRED:
                raise ExpiredTokenError()
            case _:
                raise InvalidGrantError("device_code was already used")


class SandboxRefreshTokenGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: Final = TOKEN_AUTH_METHODS

    @property
    def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:  # authlib reads this name
        return _store(self).knobs.rotate_refresh_tokens

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        return _store(self).use_refresh_token(refresh_token, self.request.client.client_id)

    def authenticate_user(self, refresh_token: RefreshRecord) -> User | None:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        # Already done: under rotation `use_refresh_token` consumed the old token atomically.
        pass


class SandboxClientCredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: Final = ["client_secret_basic", "client_secret_post"]


class SandboxDeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    """RFC 8628 §3.1-3.2 with lifetime and interval taken from the knobs at request time."""

    @property
    def EXPIRES_IN(self) -> int:  # authlib reads this name
        return _store(self).knobs.device_expires_in

    @property
    def INTERVAL(self) -> int:  # authlib reads this name
        return _store(self).knobs.device_interval

    def get_verification_uri(self) -> str:
        return _server(self).issuer + "/activate"

    def save_device_credential(
        self, client_id: str, scope: str | None, data: dict[str, Any]
    ) -> None:
        _store(self).add_device(
            DeviceRecord(
                device_code=data["device_code"],
                user_code=data["user_code"],
                client_id=client_id,
                scope=scope or "",
                expires_at=time.time() + data["expires_in"],
                interval=data["interval"],
            )
        )


class SandboxRevocationEndpoint(RevocationEndpoint):
    """RFC 7009; public clients identify themselves with `client_id` (§2.1)."""

    CLIENT_AUTH_METHODS: Final = TOKEN_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenLookup | None:
        return _store(self).lookup(token_string, time.time())

    def revoke_token(self, token: TokenLookup, request: Any) -> None:
        _store(self).revoke(token)


class SandboxIntrospectionEndpoint(IntrospectionEndpoint):
    """RFC 7662 §2, for the resource server ("mailserver") with HTTP basic credentials."""

    CLIENT_AUTH_METHODS: Final = ["client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenLookup | None:
        return _store(self).lookup(token_string, time.time())

    def check_permission(self, token: TokenLookup, client: Client, request: Any) -> bool:
        return client.client_id == MAILSERVER_CLIENT_ID

    def introspect_token(self, token: TokenLookup) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer" if token.kind is TokenKind.ACCESS else "refresh_token",
            "scope": token.scope,
            "iss": _server(self).issuer,
        }
        if token.expires_at is not None:
            payload["exp"] = int(token.expires_at)
        if token.user is not None:
            payload["sub"] = token.user.account
            payload["username"] = token.user.account
        return payload
