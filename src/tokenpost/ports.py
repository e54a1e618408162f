"""The small interfaces tokenpost owns. Services receive these; `wiring` builds the adapters.

Tests fake these ports (never the libraries behind them); adapters are tested against real peers.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.settings.model import PopSetting, Provider, SmtpSetting
from tokenpost.tokens.state import TokenState


class HttpClient(Protocol):
    # The timeout is per exchange and enforced by the adapter's HTTP client (connect, read,
    # write, pool), which an outer asyncio.timeout could not split up.
    async def send(
        self,
        request: HttpRequest,
        *,
        ca_file: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> HttpResponse:
        """One HTTP exchange; TLS is always verified (against `ca_file` when given).

        Raises:
            TransportError: no exchange (DNS, refused, timeout); TlsVerifyError for certificates.
            RemoteProtocolError: the body exceeded `oauth.http.MAX_RESPONSE_BYTES`.
        """
        ...


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A setting's token as stored. `version` grows with every write (compare-and-set);
    `binding` fingerprints what the token was obtained for (`tokens.binding`)."""

    setting_id: str
    state: TokenState
    binding: str
    version: int
    updated_at: float


class SettingsStore(Protocol):
    async def list_providers(self) -> list[Provider]: ...
    async def get_provider(self, name: str) -> Provider | None: ...
    async def put_provider(self, provider: Provider) -> None: ...
    async def delete_provider(self, name: str) -> None: ...
    async def get_smtp(self) -> SmtpSetting | None: ...
    async def put_smtp(self, setting: SmtpSetting) -> None: ...
    async def list_pop(self) -> list[PopSetting]: ...
    async def get_pop(self, name: str) -> PopSetting | None: ...
    async def put_pop(self, setting: PopSetting) -> None: ...
    async def delete_pop(self, name: str) -> None: ...


class TokenStore(Protocol):
    async def load_token(self, setting_id: str) -> TokenRecord:
        """The stored token; a setting never written reads as NotAcquired at version 0."""
        ...

    async def save_token(
        self, setting_id: str, state: TokenState, *, binding: str, expected_version: int
    ) -> TokenRecord:
        """Write if the stored version is still `expected_version`, else raise ConflictError."""
        ...


class Store(SettingsStore, TokenStore, Protocol):
    async def close(self) -> None: ...


class FlightLock(Protocol):
    """Mutual exclusion per key across coroutines and processes that share a home."""

    def hold(self, key: str) -> AbstractAsyncContextManager[None]: ...


class RedirectListener(Protocol):
    """A loopback HTTP listener for the authorization-code redirect (RFC 8252 §7.3)."""

    @property
    def redirect_uri(self) -> str: ...

    async def wait_for_redirect(self) -> str:
        """The query string of the first request to the redirect path."""
        ...

    async def close(self) -> None: ...


class RedirectListenerFactory(Protocol):
    async def __call__(self, path: str) -> RedirectListener: ...
