"""The outbound HTTP adapter: `ports.HttpClient` over httpx, for token, device and revocation
endpoints (RFC 6749 §3.2, RFC 8628 §3.1, RFC 7009 §2).

Every exchange is HTTPS with a verified certificate (against the provider's CA file when one is
configured), HTTP/1.1, without redirects, with one timeout for connect/read/write/pool, and with
the response body bounded by `MAX_RESPONSE_BYTES`. httpx exceptions become tokenpost errors in one
place, `_map_exceptions`; messages name the host and the kind of failure and never carry a request
body or header, so form values (which may be `Secret`s) stay out of every message.

httpx and certifi are imported on first use, not with this module: building an `HttpxClient`
is free, so commands that never send a request (``token status``) do not pay for them.
"""

from __future__ import annotations

import base64
import functools
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self
from urllib.parse import quote_plus, urlencode

from tokenpost import __version__
from tokenpost.errors import (
    RemoteProtocolError,
    TlsVerifyError,
    TokenpostError,
    TransportError,
    UsageError,
)
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.text import N_

if TYPE_CHECKING:
    import httpx

USER_AGENT: Final = f"tokenpost/{__version__}"

_LIMIT_KIB: Final = MAX_RESPONSE_BYTES // 1024

_MessageMap = Mapping[type[Exception], tuple[type[TokenpostError], str]]


@functools.cache
def exception_messages() -> _MessageMap:
    """Kinds of failure, per httpx exception class, looked up along the MRO so the most specific
    entry wins. Every subclass of httpx.RequestError has its own entry (a meta-test checks it): a
    new httpx exception must be given a message here rather than fall through to a generic one.
    ConnectError is refined by `_connect_failure` (certificate, refused, DNS...). Each message is
    a msgid whose only field is `{host}`, and ends in what to check. Built on first use so that
    importing this module does not import httpx."""
    import httpx

    return {
        httpx.RequestError: (
            TransportError,
            N_("the exchange with {host} failed; check the network connection to the provider"),
        ),
        httpx.TransportError: (
            TransportError,
            N_("the exchange with {host} failed; check the network connection to the provider"),
        ),
        httpx.TimeoutException: (
            TransportError,
            N_("{host} did not answer in time; check the network and any proxy, then try again"),
        ),
        httpx.ConnectTimeout: (
            TransportError,
            N_(
                "cannot connect to {host}: connection timed out; check the network and that no "
                "firewall blocks the device"
            ),
        ),
        httpx.ReadTimeout: (
            TransportError,
            N_(
                "{host} did not answer in time (read timeout); check the network and any proxy, "
                "then try again"
            ),
        ),
        httpx.WriteTimeout: (
            TransportError,
            N_(
                "cannot send the request to {host} in time; check the network and any proxy, "
                "then try again"
            ),
        ),
        httpx.PoolTimeout: (
            TransportError,
            N_("no free connection to {host} in time (pool timeout); try again later"),
        ),
        httpx.NetworkError: (
            TransportError,
            N_("the connection to {host} failed; check the network connection to the provider"),
        ),
        httpx.ConnectError: (
            TransportError,
            N_(
                "cannot connect to {host}: connection failed; check the network connection to "
                "the provider"
            ),
        ),
        httpx.ReadError: (
            TransportError,
            N_(
                "the connection to {host} broke while reading the answer; check the network "
                "and any proxy, then try again"
            ),
        ),
        httpx.WriteError: (
            TransportError,
            N_(
                "the connection to {host} broke while sending; check the network and any proxy, "
                "then try again"
            ),
        ),
        httpx.CloseError: (
            TransportError,
            N_("the connection to {host} did not close cleanly; try again"),
        ),
        httpx.ProtocolError: (
            TransportError,
            N_(
                "the HTTP/1.1 exchange with {host} failed; check the network and any proxy, "
                "then try again"
            ),
        ),
        httpx.LocalProtocolError: (
            UsageError,
            N_(
                "the request to {host} is not valid HTTP/1.1; check the provider settings for "
                "unusual characters"
            ),
        ),
        httpx.RemoteProtocolError: (
            TransportError,
            N_(
                "{host} broke HTTP/1.1 (for example closed the connection mid-response); check "
                "the network and any proxy, then try again"
            ),
        ),
        httpx.ProxyError: (
            TransportError,
            N_("the proxy refused the connection to {host}; check the proxy and its settings"),
        ),
        httpx.UnsupportedProtocol: (
            UsageError,
            N_("the URL for {host} is not an https URL; correct the provider's endpoint URL"),
        ),
        httpx.DecodingError: (
            RemoteProtocolError,
            N_(
                "the answer of {host} could not be decoded; check the provider's endpoint URLs "
                "and any proxy in between"
            ),
        ),
        httpx.TooManyRedirects: (
            RemoteProtocolError,
            N_("{host} answered with too many redirects; check the provider's endpoint URLs"),
        ),
        httpx.InvalidURL: (
            UsageError,
            N_("the URL for {host} is not valid; correct the provider's endpoint URL"),
        ),
    }


def __getattr__(name: str) -> _MessageMap:
    """`_MESSAGES`, the table of `exception_messages`, built on first access (PEP 562)."""
    if name == "_MESSAGES":
        return exception_messages()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class HttpxClient:
    """`ports.HttpClient` over one shared `httpx.AsyncClient` per CA file.

    Use as an async context manager, or call `aclose()` when done.
    """

    def __init__(self) -> None:
        self._clients: dict[str | None, httpx.AsyncClient] = {}

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
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def send(
        self,
        request: HttpRequest,
        *,
        ca_file: str | None = None,
        # The port's signature: httpx applies the timeout per phase, which asyncio.timeout cannot.
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> HttpResponse:
        """One HTTPS exchange; the response body is read up to `MAX_RESPONSE_BYTES`.

        Args:
            request: the neutral request; `Secret` form values are revealed only into the body.
            ca_file: PEM file whose CAs replace the default trust store for this exchange.
            timeout: seconds, applied to connect, read, write and pool acquisition each.

        Raises:
            UsageError: the URL is invalid or not https, or the CA file cannot be loaded.
            TransportError: no exchange happened; TlsVerifyError when the certificate failed.
            RemoteProtocolError: the body exceeded `MAX_RESPONSE_BYTES` or was content-encoded.
        """
        import httpx

        url = _https_url(request.url)
        host = _display_host(url)
        client = self._client(ca_file)
        with _map_exceptions(host):
            outgoing = client.build_request(
                request.method,
                url,
                content=_form_body(request),
                headers=_headers(request),
                timeout=httpx.Timeout(timeout),
            )
            response = await client.send(outgoing, stream=True, follow_redirects=False)
            try:
                body = await _read_bounded(response, host)
            finally:
                await response.aclose()
        return HttpResponse(
            status=response.status_code,
            body=body,
            headers=tuple(response.headers.multi_items()),
        )

    def _client(self, ca_file: str | None) -> httpx.AsyncClient:
        client = self._clients.get(ca_file)
        if client is None:
            import httpx

            client = httpx.AsyncClient(
                verify=_ssl_context(ca_file),
                http1=True,
                http2=False,
                follow_redirects=False,
                # No proxies, .netrc credentials or SSL_CERT_FILE from the environment: trust and
                # authentication come from tokenpost's configuration only.
                trust_env=False,
            )
            self._clients[ca_file] = client
        return client


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate and host name verification on; `ca_file` alone is trusted when given."""
    import certifi

    try:
        return ssl.create_default_context(cafile=ca_file or certifi.where())
    except (OSError, ssl.SSLError) as exc:
        if ca_file:
            raise UsageError(
                "cannot load CA file {path}: {reason}; give the provider's --ca-file as a "
                "readable PEM file",
                path=ca_file,
                reason=_reason(exc),
            ) from exc
        raise UsageError(
            "cannot load the default trust store: {reason}; reinstall tokenpost, or give the "
            "provider a --ca-file",
            reason=_reason(exc),
        ) from exc


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


@contextmanager
def _map_exceptions(host: str) -> Iterator[None]:
    """Translate httpx exceptions into tokenpost errors naming `host` and the failure's kind."""
    import httpx

    try:
        yield
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        raise _translate(exc, host) from exc


def _translate(exc: Exception, host: str) -> TokenpostError:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, host)
    messages = exception_messages()
    for cls in type(exc).__mro__:
        entry = messages.get(cls)
        if entry is not None:
            error_class, msgid = entry
            return error_class(msgid, host=host)
    return TransportError(  # pragma: no cover - the map is total
        "the exchange with {host} failed; check the network connection to the provider", host=host
    )


def _connect_failure(exc: httpx.ConnectError, host: str) -> TransportError:
    """Name the cause found in the exception chain: certificate, TLS, DNS, refusal, OS error."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or _reason(cause)
            return TlsVerifyError(
                "the certificate of {host} did not verify: {detail}; if a private CA or a proxy "
                "signs it, give that CA's certificate with the provider's --ca-file, and check "
                "the device's clock",
                host=host,
                detail=detail,
            )
        if isinstance(cause, ssl.SSLError):
            return TransportError(
                "cannot connect to {host}: TLS handshake failed ({reason}); check the endpoint "
                "URL and any proxy in between",
                host=host,
                reason=_reason(cause),
            )
        if isinstance(cause, socket.gaierror):
            return TransportError(
                "cannot connect to {host}: host name not resolved; check the host name and the "
                "device's DNS settings",
                host=host,
            )
        if isinstance(cause, ConnectionRefusedError):
            return TransportError(
                "cannot connect to {host}: connection refused; check the host and port and that "
                "no firewall blocks the device",
                host=host,
            )
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return TransportError(
                "cannot connect to {host}: {reason}; check the network connection to the provider",
                host=host,
                reason=cause.strerror.lower(),
            )
    return TransportError(
        "cannot connect to {host}: connection failed; check the network connection to the provider",
        host=host,
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
