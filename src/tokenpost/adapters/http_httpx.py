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

if TYPE_CHECKING:
    import httpx

USER_AGENT: Final = f"tokenpost/{__version__}"

_TOO_LARGE: Final = f"response larger than {MAX_RESPONSE_BYTES // 1024} KiB"

_MessageMap = Mapping[type[Exception], tuple[type[TokenpostError], str]]


@functools.cache
def exception_messages() -> _MessageMap:
    """Kinds of failure, per httpx exception class, looked up along the MRO so the most specific
    entry wins. Every subclass of httpx.RequestError has its own entry (a meta-test checks it): a
    new httpx exception must be given a message here rather than fall through to a generic one.
    ConnectError is refined by `_connect_failure` (certificate, refused, DNS...). `{host}` is the
    only field. Built on first use so that importing this module does not import httpx."""
    import httpx

    return {
        httpx.RequestError: (TransportError, "the exchange with {host} failed"),
        httpx.TransportError: (TransportError, "the exchange with {host} failed"),
        httpx.TimeoutException: (TransportError, "{host} did not answer in time"),
        httpx.ConnectTimeout: (TransportError, "cannot connect to {host}: connection timed out"),
        httpx.ReadTimeout: (TransportError, "{host} did not answer in time (read timeout)"),
        httpx.WriteTimeout: (TransportError, "cannot send the request to {host} in time"),
        httpx.PoolTimeout: (TransportError, "no free connection to {host} in time (pool timeout)"),
        httpx.NetworkError: (TransportError, "the connection to {host} failed"),
        httpx.ConnectError: (TransportError, "cannot connect to {host}: connection failed"),
        httpx.ReadError: (
            TransportError,
            "the connection to {host} broke while reading the answer",
        ),
        httpx.WriteError: (TransportError, "the connection to {host} broke while sending"),
        httpx.CloseError: (TransportError, "the connection to {host} did not close cleanly"),
        httpx.ProtocolError: (TransportError, "the HTTP/1.1 exchange with {host} failed"),
        httpx.LocalProtocolError: (UsageError, "the request to {host} is not valid HTTP/1.1"),
        httpx.RemoteProtocolError: (
            TransportError,
            "{host} broke HTTP/1.1 (for example closed the connection mid-response)",
        ),
        httpx.ProxyError: (TransportError, "the proxy refused the connection to {host}"),
        httpx.UnsupportedProtocol: (UsageError, "the URL for {host} is not an https URL"),
        httpx.DecodingError: (RemoteProtocolError, "the answer of {host} could not be decoded"),
        httpx.TooManyRedirects: (RemoteProtocolError, "{host} answered with too many redirects"),
        httpx.InvalidURL: (UsageError, "the URL for {host} is not valid"),
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
        source = ca_file or "of the default trust store"
        raise UsageError(f"cannot load CA file {source}: {_reason(exc)}") from exc


def _https_url(raw: str) -> httpx.URL:
    import httpx

    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise UsageError(f"invalid request URL: {exc}") from exc
    if url.scheme != "https" or not url.host:
        # Tokens, codes and client secrets never cross plain HTTP (DESIGN invariant 3).
        raise UsageError("request URL must be an https URL with a host")
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
        raise RemoteProtocolError(f"{host} sent a content-encoded answer though none was accepted")
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise RemoteProtocolError(f"{host}: {_TOO_LARGE}")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise RemoteProtocolError(f"{host}: {_TOO_LARGE}")
    return bytes(body)


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
            error_class, template = entry
            return error_class(template.format(host=host))
    return TransportError(f"the exchange with {host} failed")  # pragma: no cover - map is total


def _connect_failure(exc: httpx.ConnectError, host: str) -> TransportError:
    """Name the cause found in the exception chain: certificate, TLS, DNS, refusal, OS error."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or _reason(cause)
            return TlsVerifyError(
                f"the certificate of {host} did not verify: {detail} "
                "(use --ca-file for a private CA)"
            )
        if isinstance(cause, ssl.SSLError):
            return TransportError(
                f"cannot connect to {host}: TLS handshake failed ({_reason(cause)})"
            )
        if isinstance(cause, socket.gaierror):
            return TransportError(f"cannot connect to {host}: host name not resolved")
        if isinstance(cause, ConnectionRefusedError):
            return TransportError(f"cannot connect to {host}: connection refused")
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return TransportError(f"cannot connect to {host}: {cause.strerror.lower()}")
    return TransportError(f"cannot connect to {host}: connection failed")


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
