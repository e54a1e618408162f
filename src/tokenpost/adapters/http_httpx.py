"""The outbound HTTP adapter: `ports.HttpClient` over httpx, for token, device and revocation
endpoints (RFC 6749 §3.2, RFC 8628 §3.1, RFC 7009 §2).

Every exchange is HTTPS with a verified certificate (the one TLS policy of `adapters.tls`: the
provider's CA file, else TOKENPOST_CA_FILE, else the system trust store), HTTP/1.1, without
redirects, with one timeout for connect/read/write/pool, and with the response body bounded by
`MAX_RESPONSE_BYTES`. The proxy, if any, is the provider's own or the environment's
(`adapters.proxies`). httpx exceptions become tokenpost errors in `adapters.http_failures`.

httpx's own reading of the environment stays off (``trust_env=False``): proxies are read by
`adapters.proxies` (once, by wiring), and neither SSL_CERT_FILE as httpx reads it, nor .netrc
credentials, nor certifi's bundle decide what tokenpost trusts or sends.

httpx is imported on first use, not with this module: building an `HttpxClient` is free, so
commands that never send a request (``token status``) do not pay for it.
"""

from __future__ import annotations

import base64
import ssl
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self
from urllib.parse import quote_plus, urlencode

from tokenpost import __version__
from tokenpost.adapters.http_failures import Route, mapped
from tokenpost.adapters.proxies import Proxy, ProxyEnvironment, choose_proxy
from tokenpost.adapters.tls import Purpose, client_context_async
from tokenpost.errors import RemoteProtocolError, UsageError
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.settings.network import Network, Trust, trust_for

if TYPE_CHECKING:
    import httpx

USER_AGENT: Final = f"tokenpost/{__version__}"

_LIMIT_KIB: Final = MAX_RESPONSE_BYTES // 1024

_ClientKey = tuple[Trust, Proxy | None]


class HttpxClient:
    """`ports.HttpClient` over one shared `httpx.AsyncClient` per trust source and proxy.

    `home_ca_file` is TOKENPOST_CA_FILE (already checked), `proxies` the environment's proxy
    variables; both are read once, by wiring. Use as an async context manager, or call `aclose()`
    when done.
    """

    def __init__(
        self, *, home_ca_file: str | None = None, proxies: ProxyEnvironment | None = None
    ) -> None:
        self._home_ca_file = home_ca_file
        self._proxies = proxies or ProxyEnvironment()
        # Each client with the contexts it was built with (its own, its https proxy's).
        self._clients: dict[
            _ClientKey, tuple[ssl.SSLContext, ssl.SSLContext | None, httpx.AsyncClient]
        ] = {}
        # Clients whose CA file changed on disk: closed with the rest, as requests may still be
        # in flight on them.
        self._retired: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every cached client; a later `send` opens new ones."""
        clients = [client for _, _, client in self._clients.values()] + self._retired
        self._clients, self._retired = {}, []
        for client in clients:
            await client.aclose()

    async def send(
        self,
        request: HttpRequest,
        *,
        network: Network,
        # The port's signature: httpx applies the timeout per phase, which asyncio.timeout cannot.
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> HttpResponse:
        """One HTTPS exchange; the response body is read up to `MAX_RESPONSE_BYTES`.

        Args:
            request: the neutral request; `Secret` form values are revealed only into the body.
            network: the provider's CA file and proxy (None each: the home's defaults).
            timeout: seconds, applied to connect, read, write and pool acquisition each.

        Raises:
            UsageError: the URL is invalid or not https, the CA file or the system store cannot
                be used, or the proxy URL is not one.
            TransportError: no exchange happened; TlsVerifyError when the certificate failed.
            RemoteProtocolError: the body exceeded `MAX_RESPONSE_BYTES` or was content-encoded.
        """
        import httpx

        url = _https_url(request.url)
        trust = trust_for(network.ca_file, self._home_ca_file)
        proxy = choose_proxy(network.proxy, self._proxies, url.host, url.port or 443)
        # An https proxy is the site's, not the provider's: the home's trust, not a --ca-file.
        proxy_trust = None
        if proxy is not None and proxy.scheme == "https":
            proxy_trust = trust_for(None, self._home_ca_file)
        route = Route(_display_host(url), trust, proxy, proxy_trust)
        client = await self._client(trust, proxy, proxy_trust)
        with mapped(route):
            outgoing = client.build_request(
                request.method,
                url,
                content=_form_body(request),
                headers=_headers(request),
                timeout=httpx.Timeout(timeout),
            )
            response = await client.send(outgoing, stream=True, follow_redirects=False)
            try:
                body = await _read_bounded(response, route.host)
            finally:
                await response.aclose()
        return HttpResponse(
            status=response.status_code,
            body=body,
            headers=tuple(response.headers.multi_items()),
        )

    async def _client(
        self, trust: Trust, proxy: Proxy | None, proxy_trust: Trust | None
    ) -> httpx.AsyncClient:
        """The client for `trust` and `proxy`, built again when a CA file changed on disk."""
        context = await client_context_async(trust, Purpose.HTTP)
        proxy_context = None
        if proxy_trust is not None:
            proxy_context = await client_context_async(proxy_trust, Purpose.HTTP)
        key = (trust, proxy)
        built = self._clients.get(key)
        if built is not None and built[0] is context and built[1] is proxy_context:
            return built[2]
        if built is not None:
            self._retired.append(built[2])
        client = _new_client(context, proxy, proxy_context)
        self._clients[key] = (context, proxy_context, client)
        return client


def _new_client(
    context: ssl.SSLContext, proxy: Proxy | None, proxy_context: ssl.SSLContext | None
) -> httpx.AsyncClient:
    import httpx

    via = None
    if proxy is not None:
        credentials = None
        if proxy.username is not None or proxy.password is not None:
            password = proxy.password.reveal() if proxy.password is not None else ""
            credentials = (proxy.username or "", password)
        via = httpx.Proxy(proxy.shown, auth=credentials, ssl_context=proxy_context)
    return httpx.AsyncClient(
        verify=context,
        proxy=via,
        http1=True,
        http2=False,
        follow_redirects=False,
        trust_env=False,  # see the module's docstring
    )


def _https_url(raw: str) -> httpx.URL:
    import httpx

    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise UsageError(
            "invalid request URL ({reason}); correct the provider's endpoint URL", reason=str(exc)
        ) from exc
    if url.scheme != "https" or not url.host:
        # Tokens, codes and client secrets never cross plain HTTP (DESIGN invariant 3).
        raise UsageError(
            "request URL must be an https URL with a host; correct the provider's endpoint URL"
        )
    return url


def _display_host(url: httpx.URL) -> str:
    """host[:port] for messages; never the userinfo, path or query of the URL."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return host if url.port is None else f"{host}:{url.port}"


def _form_body(request: HttpRequest) -> bytes | None:
    if not request.form:
        return None
    pairs = [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in request.form]
    return urlencode(pairs).encode("ascii")


def _basic_credentials(client_id: str, secret: Secret) -> str:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then HTTP Basic (RFC 7617) over them."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret.reveal())}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _headers(request: HttpRequest) -> httpx.Headers:
    import httpx

    headers = httpx.Headers(
        {
            "Accept": "application/json",
            # Decoded bodies could exceed the bound by any factor; read exactly what is sent.
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
        }
    )
    if request.form:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if request.basic_auth is not None:
        headers["Authorization"] = _basic_credentials(*request.basic_auth)
    for name, value in request.headers:
        headers[name] = value
    return headers


async def _read_bounded(response: httpx.Response, host: str) -> bytes:
    """The raw body, refusing early anything above `MAX_RESPONSE_BYTES` or content-encoded."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        raise RemoteProtocolError(
            "{host} sent a content-encoded answer though none was accepted; check any proxy in "
            "between",
            host=host,
        )
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise _too_large(host)
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _too_large(host)
    return bytes(body)


def _too_large(host: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        "{host}: response larger than {limit} KiB; check the provider's endpoint URLs",
        host=host,
        limit=_LIMIT_KIB,
    )
