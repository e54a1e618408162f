"""Loopback redirect URIs (RFC 8252 §7.3, §8.3): the one registered, the one a flow sends, and
what a redirect must match.

The administrator registers a redirect URI at the provider (`Provider.redirect_uri`, else the
preset's: Microsoft ``http://localhost``, Google and generic ``http://127.0.0.1``). A flow uses
it as it is — scheme, host, path, a trailing slash or none — and only fills in the port when the
URI has none: a free port chosen when the flow starts, which RFC 8252 §7.3 obliges authorization
servers to accept and Microsoft ignores when matching (protocols.md §1.7). So ``http://localhost``
becomes ``http://localhost:53682``, and ``http://127.0.0.1:8400/cb`` stays as it is. The same URI
goes into the authorization request and into the code exchange (RFC 6749 §4.1.3).

A redirect — the request the browser makes to the loopback listener, or the address it ended on
pasted on the terminal — belongs to the flow when its host, port and path are those of the URI
sent. The empty path and ``/`` are the same (RFC 3986 §6.2.3: a browser asks for ``/``), and so
are no port and the scheme's default port.

A flow started by a web page may use the page's own callback instead (`web_redirect_rule`): any
``http`` or ``https`` address the administrator registered at the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from tokenpost.errors import ClientConfigError, FieldProblem
from tokenpost.settings.syntax import SPACE_OR_CONTROL, loopback_redirect_rule
from tokenpost.text import N_

# What a path may hold unescaped (RFC 3986 §3.3 pchar and "/"); "%" keeps escapes as given.
_PATH_SAFE: Final = "/%:@!$&'()*+,;=-._~"
# Where a listener for each registered host listens. `localhost` may resolve to either address,
# and browsers try ::1 first: both, on the same port (RFC 8252 §7.3 "SHOULD NOT assume").
_ADDRESSES: Final = {
    "localhost": ("127.0.0.1", "::1"),
    "127.0.0.1": ("127.0.0.1",),
    "[::1]": ("::1",),
}
HTTP_DEFAULT_PORT: Final = 80
_DEFAULT_PORTS: Final = {"http": HTTP_DEFAULT_PORT, "https": 443}


@dataclass(frozen=True, slots=True)
class LoopbackRedirect:
    """A registered loopback redirect URI, taken apart. Build it with `parse_loopback_redirect`.

    `registered` is the URI exactly as configured; `host` is its host in lower case
    (``localhost``, ``127.0.0.1`` or ``[::1]``); `port` is the registered port, or None when a free
    one is chosen at each start; `path` is the path as registered ("" when there is none).
    """

    registered: str
    host: str
    port: int | None
    path: str

    @property
    def addresses(self) -> tuple[str, ...]:
        """The IP addresses a listener for this URI listens on, the preferred one first."""
        return _ADDRESSES[self.host]

    def with_port(self, port: int) -> str:
        """The registered URI with `port` in it: what the flow sends as `redirect_uri`.

        Raises:
            ValueError: the URI has a port of its own and `port` is another.
        """
        if self.port is not None:
            if port != self.port:
                raise ValueError("the registered redirect URI fixes another port")
            return self.registered
        start = self.registered.index("://") + 3
        end = self.registered.find("/", start)
        end = len(self.registered) if end < 0 else end
        return f"{self.registered[:end]}:{port}{self.registered[end:]}"


def parse_loopback_redirect(uri: str) -> LoopbackRedirect:
    """The parts of a registered redirect URI (one that `loopback_redirect_rule` accepts).

    Raises:
        ClientConfigError: the URI breaks the rule (a provider saved before the rule existed).
    """
    rule = loopback_redirect_rule(uri)
    if rule is not None:
        raise ClientConfigError(
            "the provider's redirect URI {uri} is not usable ({problem}); correct it with"
            " tokenpost provider add NAME … --redirect-uri URI",
            uri=uri,
            problem=FieldProblem("redirect_uri", rule),
        )
    parts = urlsplit(uri)
    port = parts.port
    host = parts.netloc.rpartition(":")[0] if port is not None else parts.netloc
    return LoopbackRedirect(registered=uri, host=host.lower(), port=port, path=parts.path)


def web_redirect_rule(uri: str) -> str | None:
    """The rule a web page's own redirect URI (its callback) breaks (a msgid), or None: an
    absolute ``http`` or ``https`` address with a host, an optional port and path, and no user
    name, query or fragment (RFC 6749 §3.1.2: the code and state are added as the query)."""
    if SPACE_OR_CONTROL.search(uri) or "#" in uri or "?" in uri or "@" in uri:
        return N_("must be an http:// or https:// address without user name, query or #")
    try:
        parts = urlsplit(uri)
        port = parts.port  # a port that is not 0-65535 raises ValueError
    except ValueError:
        return N_("must be an http:// or https:// address without user name, query or #")
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return N_("must be an http:// or https:// address without user name, query or #")
    if port == 0:
        return N_("the port must be 1-65535")
    return None


def scheme_of(redirect_uri: str) -> str:
    """The scheme of a redirect URI, in lower case (``http`` for every loopback one)."""
    return urlsplit(redirect_uri).scheme.lower()


def is_redirect_target(redirect_uri: str, *, authority: str, path: str) -> bool:
    """True when a request for `path` naming `authority` (a Host header, or the host and port of
    a pasted address) is for `redirect_uri`, the URI a flow sent (with its port)."""
    return same_authority(redirect_uri, authority) and same_path(redirect_uri, path)


def same_authority(redirect_uri: str, authority: str) -> bool:
    """True when `authority` names the host and port of `redirect_uri`: hosts compare without
    regard to case, no port means the scheme's default (80 for http, 443 for https), and a user
    name makes it another authority."""
    expected = urlsplit(redirect_uri)
    default = _DEFAULT_PORTS.get(expected.scheme.lower(), HTTP_DEFAULT_PORT)
    try:
        given = urlsplit(f"//{authority}")
        given_port = given.port or default
    except ValueError:
        return False
    if "@" in given.netloc or not given.hostname:
        return False
    return given.hostname == expected.hostname and given_port == (expected.port or default)


def same_path(redirect_uri: str, path: str) -> bool:
    """True when `path` (as a browser sends it, escaped) is the path of `redirect_uri`."""
    return (path or "/") == (quote(urlsplit(redirect_uri).path, safe=_PATH_SAFE) or "/")
