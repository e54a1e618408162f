"""Where a provider's endpoints are: the preset's table, explicit settings, or discovery.

Discovery (RFC 8414, then OpenID Connect Discovery) costs a round trip, so results are kept for
the life of the process; the issuer check in `parse_metadata` makes a cached answer safe to reuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenpost.errors import RemoteProtocolError, TransportError, UsageError
from tokenpost.oauth import rfc8414
from tokenpost.oauth.http import HttpRequest
from tokenpost.oauth.providers import Endpoints, endpoints_from_metadata, preset_endpoints
from tokenpost.ports import HttpClient
from tokenpost.settings.model import Provider


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
        if not provider.issuer:
            raise UsageError(f"provider {provider.name}: set --issuer or the endpoints")
        metadata = self._cache.get(provider.issuer)
        if metadata is None:
            metadata = await self._discover(provider)
            self._cache[provider.issuer] = metadata
        return endpoints_from_metadata(provider, metadata)

    async def _discover(self, provider: Provider) -> rfc8414.ServerMetadata:
        assert provider.issuer is not None  # noqa: S101 - checked by the caller
        last: Exception | None = None
        for url in rfc8414.discovery_urls(provider.issuer):
            try:
                response = await self.http.send(
                    HttpRequest("GET", url), ca_file=provider.ca_file, timeout=15.0
                )
                if response.status == 404:
                    continue
                return rfc8414.parse_metadata(response, expected_issuer=provider.issuer)
            except (RemoteProtocolError, TransportError) as error:
                last = error
        if last is not None:
            raise last
        raise RemoteProtocolError(
            f"provider {provider.name}: no discovery document at {provider.issuer}"
        )
