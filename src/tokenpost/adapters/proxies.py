"""Which HTTP proxy a request to a provider goes through (mail never goes through one).

- A provider's own ``--proxy`` (`Provider.proxy`) is used for every endpoint of that provider,
  whatever the environment says.
- Else the environment's ``HTTPS_PROXY`` (``https_proxy`` wins when both are set, as in curl and
  urllib), for every host that ``NO_PROXY`` (``no_proxy``) does not exempt. Provider traffic is
  always https, so ``HTTP_PROXY``, which curl, requests and Go use for http:// URLs only, is not
  used.
- Loopback (``localhost``, ``*.localhost``, 127.0.0.0/8, ::1) never goes through a proxy of the
  environment: through a proxy, 127.0.0.1 would be the proxy's own host, never this one.

``NO_PROXY`` is a comma-separated list; each entry is ``*`` (every host), a domain (``example.com``
or ``.example.com``: the domain and every host under it), an IP address, a network in CIDR form
(``10.0.0.0/8``), any of these with ``:PORT`` (that port only).

A proxy is ``http://HOST[:PORT]`` (an https endpoint is reached through a CONNECT tunnel) or
``https://HOST[:PORT]`` (TLS to the proxy as well, verified like the provider's own certificate);
a scheme-less ``HOST:PORT`` means http://. The environment's proxy may carry ``user:password@``
(sent as Proxy-Authorization: Basic); a provider's ``--proxy`` may not (`settings.syntax`). The
password is a `Secret` and never part of what `Proxy.shown` gives, which is all messages use.

The environment is read once, by wiring (`ProxyEnvironment.from_environ`); an unusable variable is
reported when a request would use it, so commands that send none are not held up by it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from tokenpost.errors import UsageError
from tokenpost.secret import Secret
from tokenpost.settings.syntax import is_host

PROVIDER_SOURCE: Final = "--proxy"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy. `source` names where it came from: "--proxy" or the variable's name."""

    scheme: str  # "http" | "https"
    host: str  # no brackets for IPv6
    port: int
    source: str
    username: str | None = None
    password: Secret | None = None

    @property
    def shown(self) -> str:
        """scheme://host:port for messages: never the user name or password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.shown!r}, source={self.source!r})"


class ProxySettingError(UsageError):
    """A proxy URL that cannot be used; the message names its source, never its value."""


@functools.lru_cache(maxsize=16)
def parse_proxy(url: str, source: str) -> Proxy:
    """`url` as a Proxy. Raises ProxySettingError naming `source` (the value may hold a
    password, so it is not shown). Kept per process: the environment's proxy is parsed once, not
    per request (about 15 µs each)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _unusable(source) from None
    host = parts.hostname
    if (
        parts.scheme not in _DEFAULT_PORTS
        or host is None
        or not is_host(host)
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise _unusable(source)
    username = unquote(parts.username) if parts.username else None
    password = Secret(unquote(parts.password)) if parts.password else None
    return Proxy(
        parts.scheme,
        host,
        port or _DEFAULT_PORTS[parts.scheme],
        source,
        username,
        password,
    )


def _unusable(source: str) -> ProxySettingError:
    if source == PROVIDER_SOURCE:
        return ProxySettingError(
            "the provider's --proxy is not a usable proxy URL; give http://HOST:PORT or "
            "https://HOST:PORT"
        )
    return ProxySettingError(
        "the variable {variable} is not a usable proxy URL; set it to http://HOST:PORT or "
        "https://HOST:PORT (with user:password@ when the proxy needs them) in tokenpost's "
        "environment",
        variable=source,
    )


@dataclass(frozen=True, slots=True)
class _Exemption:
    """One NO_PROXY entry."""

    domain: str | None = None  # matches itself and every host under it
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None  # None: every port

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            address = _address(host)
            return address is not None and address in self.network
        assert self.domain is not None  # noqa: S101 - one of the two is always set
        return host == self.domain or host.endswith("." + self.domain)


@dataclass(frozen=True, slots=True)
class ProxyEnvironment:
    """HTTPS_PROXY and NO_PROXY as tokenpost's environment gave them when it started."""

    https_proxy: Secret | None = None  # the URL as given: it may hold a password
    https_proxy_variable: str = "HTTPS_PROXY"
    exempt_all: bool = False
    exemptions: tuple[_Exemption, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxyEnvironment:
        variable, value = _first_set(environ, "https_proxy", "HTTPS_PROXY")
        _, no_proxy = _first_set(environ, "no_proxy", "NO_PROXY")
        entries = [e.strip().lower() for e in (no_proxy or "").split(",") if e.strip()]
        return cls(
            https_proxy=Secret(value) if value else None,
            https_proxy_variable=variable or "HTTPS_PROXY",
            exempt_all="*" in entries,
            exemptions=tuple(x for x in map(_exemption, entries) if x is not None),
        )

    def proxy_for(self, host: str, port: int) -> Proxy | None:
        """The environment's proxy for https://host:port, or None to connect directly.

        Raises:
            ProxySettingError: HTTPS_PROXY applies to this host and is not a usable URL.
        """
        if self.https_proxy is None or self.exempt_all or _is_loopback(host):
            return None
        name = host.lower().rstrip(".")
        if any(exemption.matches(name, port) for exemption in self.exemptions):
            return None
        return parse_proxy(self.https_proxy.reveal(), self.https_proxy_variable)


def choose_proxy(
    provider_proxy: str | None, environment: ProxyEnvironment, host: str, port: int
) -> Proxy | None:
    """The proxy for a request to https://host:port of a provider whose --proxy is
    `provider_proxy` (None: the environment decides); None: connect directly."""
    if provider_proxy:
        return parse_proxy(provider_proxy, PROVIDER_SOURCE)
    return environment.proxy_for(host, port)


def _first_set(environ: Mapping[str, str], *names: str) -> tuple[str | None, str | None]:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None, None


def _exemption(entry: str) -> _Exemption | None:
    """One NO_PROXY entry; None for "*" (handled apart) and for entries that mean nothing."""
    if entry == "*":
        return None
    host, port = _split_port(entry)
    if "/" in host:
        try:
            return _Exemption(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            return None
    if _address(host) is not None:
        return _Exemption(network=ipaddress.ip_network(host), port=port)
    domain = host.removeprefix("*").lstrip(".").rstrip(".")
    return _Exemption(domain=domain, port=port) if domain else None


def _split_port(entry: str) -> tuple[str, int | None]:
    """("host", port) from "host:port", "[v6]:port", "[v6]", "v6" or "host"."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    address = _address(name)
    return address is not None and address.is_loopback
