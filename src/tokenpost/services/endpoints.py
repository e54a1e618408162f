"""Where a provider's endpoints are: the preset's table, explicit settings, or discovery.

Discovery (RFC 8414, then OpenID Connect Discovery) costs a round trip, so results are kept for
the life of the process; the issuer check in `parse_metadata` makes a cached answer safe to reuse.
The same document tells which scopes the provider offers (`scopes_supported`), which settings
validation shows when a generic provider names none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenpost.errors import RemoteProtocolError, TransportError, UsageError
from tokenpost.oauth import rfc8414
from tokenpost.oauth.http import HttpRequest
from tokenpost.oauth.providers import Endpoints, endpoints_from_metadata, preset_endpoints
from tokenpost.ports import HttpClient
from tokenpost.settings.model import Provider

DISCOVERY_TIMEOUT = 15.0


@dataclass
class EndpointResolver:
    http: HttpClient
    _cache: dict[str, rfc8414.ServerMetadata] = field(default_factory=dict)

    async def resolve(self, provider: Provider) -> Endpoints:
        """The provider's endpoints.

        Raises:
            UsageError: a generic provider with neither endpoints nor an issuer.
            TransportError, RemoteProtocolError: discovery failed at every well-known URL.
        """
        known = preset_endpoints(provider)
        if known is not None:
            return known
        return endpoints_from_metadata(provider, await self.metadata(provider))

    async def metadata(self, provider: Provider) -> rfc8414.ServerMetadata:
        """The provider's discovery document (RFC 8414 / OpenID Connect), fetched once per
        process and issuer.

        Raises:
            UsageError: the provider has no issuer.
            TransportError, RemoteProtocolError: discovery failed at every well-known URL.
        """
        if not provider.issuer:
            raise UsageError("provider {name}: set --issuer or the endpoints", name=provider.name)
        metadata = self._cache.get(provider.issuer)
        if metadata is None:
            metadata = await self._discover(provider, provider.issuer)
            self._cache[provider.issuer] = metadata
        return metadata

    async def _discover(self, provider: Provider, issuer: str) -> rfc8414.ServerMetadata:
        last: Exception | None = None
        for url in rfc8414.discovery_urls(issuer):
            try:
                response = await self.http.send(
                    HttpRequest("GET", url), network=provider.network, timeout=DISCOVERY_TIMEOUT
                )
                if response.status == 404:
                    continue
                return rfc8414.parse_metadata(response, expected_issuer=issuer)
            except (RemoteProtocolError, TransportError) as error:
                last = error
        if last is not None:
            raise last
        raise RemoteProtocolError(
            "provider {name}: no discovery document at {issuer}", name=provider.name, issuer=issuer
        )
