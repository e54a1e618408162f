"""What goes wrong in an exchange with a provider, as the administrator reads it.

httpx exceptions become tokenpost errors here and only here (`mapped`). Messages name the host and
the kind of failure and end in what to check; they never carry a request body or header, so form
values (which may be `Secret`s) stay out of every message. A certificate that did not verify is
reported with the trust source it was checked against (`adapters.tls.verify_failed`). When the
request went through a proxy, failures of the proxy itself (unreachable, CONNECT refused) name the
proxy as `Proxy.shown` gives it, and where it was set, never its user name or password.

httpx is imported on first use, not with this module (see `adapters.http_httpx`).
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tokenpost.adapters.proxies import PROVIDER_SOURCE, Proxy
from tokenpost.adapters.tls import handshake_reason, verify_failed
from tokenpost.errors import (
    RemoteProtocolError,
    TokenpostError,
    TransportError,
    UsageError,
)
from tokenpost.oauth.rfc6749 import sanitize_text
from tokenpost.settings.network import SYSTEM_TRUST, Trust
from tokenpost.text import N_, Text

if TYPE_CHECKING:
    import httpx

PROXY_REASON_LIMIT: Final = 120

MessageMap = Mapping[type[Exception], tuple[type[TokenpostError], str]]


@functools.cache
def exception_messages() -> MessageMap:
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


@dataclass(frozen=True, slots=True)
class Route:
    """How a request went: to `host` (host[:port], for messages), checked against `trust`,
    through `proxy` (None: directly)."""

    host: str
    trust: Trust = SYSTEM_TRUST
    proxy: Proxy | None = None
    proxy_trust: Trust | None = None  # an https proxy's certificate is checked against this


@contextmanager
def mapped(route: Route | str) -> Iterator[None]:
    """Translate httpx exceptions into tokenpost errors naming the host (a Route or just the
    host) and the failure's kind."""
    import httpx

    if isinstance(route, str):
        route = Route(route)
    try:
        yield
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        raise translate(exc, route) from exc


def translate(exc: Exception, route: Route) -> TokenpostError:
    import httpx

    host = route.host
    if route.proxy is not None:
        failure = _proxy_failure(exc, route, route.proxy)
        if failure is not None:
            return failure
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, route)
    messages = exception_messages()
    for cls in type(exc).__mro__:
        entry = messages.get(cls)
        if entry is not None:
            error_class, msgid = entry
            return error_class(msgid, host=host)
    return TransportError(  # pragma: no cover - the map is total
        "the exchange with {host} failed; check the network connection to the provider", host=host
    )


def _connect_failure(exc: httpx.ConnectError, route: Route) -> TransportError:
    """Name the cause found in the exception chain: certificate, TLS, DNS, refusal, OS error."""
    host = route.host
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _verify_failed(route, cause)
        if isinstance(cause, ssl.SSLError):
            return TransportError(
                "cannot connect to {host}: TLS handshake failed ({reason}); check the endpoint "
                "URL and any proxy in between",
                host=host,
                reason=handshake_reason(cause),
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
    for cause in causes(exc):
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


def _verify_failed(route: Route, cause: ssl.SSLCertVerificationError) -> TransportError:
    """Through an https proxy, the certificate may be the proxy's or the provider's: httpx does
    not tell which of the two handshakes failed, so the message names both and what each was
    checked against."""
    if route.proxy is None or route.proxy_trust is None:
        return verify_failed(route.host, cause, route.trust)
    return verify_failed(
        Text("{host} or of the proxy {proxy}", host=route.host, proxy=route.proxy.shown),
        cause,
        route.trust,
        trusted=Text(
            "{trust} for {host}, {proxy_trust} for the proxy",
            trust=route.trust.describe(),
            host=route.host,
            proxy_trust=route.proxy_trust.describe(),
        ),
    )


def _proxy_failure(exc: Exception, route: Route, proxy: Proxy) -> TokenpostError | None:
    """A failure of the proxy itself, or None for one of the exchange behind it."""
    import httpx

    if isinstance(exc, httpx.ProxyError):
        answer = sanitize_text(str(exc), limit=PROXY_REASON_LIMIT)
        if answer.startswith("407"):
            return TransportError(
                "the proxy {proxy} ({source}) asks for a user name and password ({answer}); "
                "put them into HTTPS_PROXY, as user:password@ before the proxy's host",
                proxy=proxy.shown,
                source=_source(proxy),
                answer=answer,
            )
        return TransportError(
            "the proxy {proxy} ({source}) refused the connection to {host} ({answer}); check "
            "that the proxy lets the device reach {host}",
            proxy=proxy.shown,
            source=_source(proxy),
            host=route.host,
            answer=answer,
        )
    if not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return None
    if any(isinstance(cause, ssl.SSLError) for cause in causes(exc)):
        return None  # TLS with the provider (or an https proxy): `_connect_failure` tells
    why = _proxy_connect_reason(exc)
    return TransportError(
        "cannot connect to the proxy {proxy} ({source}) to reach {host}: {reason}; check the "
        "proxy's address and port and that it is running",
        proxy=proxy.shown,
        source=_source(proxy),
        host=route.host,
        reason=why,
    )


def _proxy_connect_reason(exc: Exception) -> str | Text:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return Text("connection timed out")
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            return Text("host name not resolved")
        if isinstance(cause, ConnectionRefusedError):
            return Text("connection refused")
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return Text("connection failed")


def _source(proxy: Proxy) -> Text:
    if proxy.source == PROVIDER_SOURCE:
        return Text("the provider's --proxy")
    return Text("the variable {variable}", variable=proxy.source)


def causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
