"""RFC 8414 authorization server metadata and OpenID Connect Discovery 1.0 §4 (client side).

`discovery_urls` gives both well-known locations, RFC 8414's first (§3.1: inserted between host
and path), then OpenID's (appended). `parse_metadata` accepts a document only if its `issuer` is
the one we asked for (RFC 8414 §3.3), so a cached answer is safe to reuse; Microsoft's multi-tenant
documents carry the template `https://login.microsoftonline.com/{tenantid}/v2.0`, which matches any
single path segment in its place. Every endpoint must be https: tokens never cross plain HTTP.
`scopes_supported` (RFC 8414 §2, RECOMMENDED) is kept as the server lists it, or None when the
document has none: a generic provider's missing-scope error shows it to the administrator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from tokenpost.errors import RemoteProtocolError, UsageError
from tokenpost.oauth.http import HttpResponse
from tokenpost.oauth.rfc6749 import is_success, json_object, require_str, require_web_url
from tokenpost.text import N_

RFC8414_SUFFIX: Final = "/.well-known/oauth-authorization-server"
OIDC_SUFFIX: Final = "/.well-known/openid-configuration"
TENANT_TEMPLATE: Final = "{tenantid}"
_WHAT: Final = N_("authorization server metadata")


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """What tokenpost uses of a metadata document (RFC 8414 §2).

    `issuer` is the issuer we asked for. `issuer_is_template` is True when the document only
    matched through a `{tenantid}` template: the server's `iss` values then name the real tenant,
    so they cannot be compared with `issuer`.
    """

    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    code_challenge_methods_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    issuer_is_template: bool = False
    scopes_supported: tuple[str, ...] | None = None  # None: the document does not say


def discovery_urls(issuer: str) -> tuple[str, ...]:
    """The metadata URLs to try for `issuer`, RFC 8414 §3.1 first, then OpenID Discovery §4.

    Raises:
        UsageError: the issuer is not an https URL with a host and without query, fragment or
            user info (RFC 8414 §2).
    """
    parts = urlsplit(issuer)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or issuer.endswith(("?", "#"))
    ):
        raise UsageError("issuer: must be an https URL without query, fragment or user info")
    path = parts.path.rstrip("/")
    return (
        f"https://{parts.netloc}{RFC8414_SUFFIX}{path}",
        f"https://{parts.netloc}{path}{OIDC_SUFFIX}",
    )


def _issuer_matches(document_issuer: str, expected: str) -> tuple[bool, bool]:
    """(matches, through the template)."""
    if document_issuer == expected:
        return True, False
    pieces = document_issuer.split(TENANT_TEMPLATE)
    # One template, in the path only: the host must still be exactly the one we asked.
    if len(pieces) != 2 or TENANT_TEMPLATE in urlsplit(document_issuer).netloc:
        return False, False
    pattern = "[^/?#]+".join(re.escape(p) for p in pieces)
    return re.fullmatch(pattern, expected) is not None, True


def _optional_url(body: Mapping[str, object], name: str) -> str | None:
    value = body.get(name)
    return None if value is None else require_web_url(value, name=name, what=_WHAT)


def _strings(body: Mapping[str, object], name: str) -> tuple[str, ...]:
    return _optional_strings(body, name) or ()


def _optional_strings(body: Mapping[str, object], name: str) -> tuple[str, ...] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RemoteProtocolError(
            "authorization server metadata: {name!r} must be a JSON array of strings", name=name
        )
    return tuple(value)


def parse_metadata(response: HttpResponse, *, expected_issuer: str) -> ServerMetadata:
    """A metadata document (RFC 8414 §3.2) for `expected_issuer`.

    Raises:
        RemoteProtocolError: not a 2xx JSON object, `issuer` not `expected_issuer` (§3.3), no
            `token_endpoint`, an endpoint that is not an https URL, or a malformed list; the
            message names the field.
    """
    if not is_success(response):
        raise RemoteProtocolError(
            "authorization server metadata: HTTP {status} from the discovery URL",
            status=response.status,
        )
    body = json_object(response, what=_WHAT)
    document_issuer = require_str(body, "issuer", what=_WHAT)
    matches, templated = _issuer_matches(document_issuer, expected_issuer)
    if not matches:
        raise RemoteProtocolError(
            "authorization server metadata: 'issuer' is not {issuer} (RFC 8414 §3.3; the "
            "document belongs to another server)",
            issuer=expected_issuer,
        )
    return ServerMetadata(
        issuer=expected_issuer,
        token_endpoint=require_web_url(
            body.get("token_endpoint"), name="token_endpoint", what=_WHAT
        ),
        authorization_endpoint=_optional_url(body, "authorization_endpoint"),
        device_authorization_endpoint=_optional_url(body, "device_authorization_endpoint"),
        revocation_endpoint=_optional_url(body, "revocation_endpoint"),
        code_challenge_methods_supported=_strings(body, "code_challenge_methods_supported"),
        grant_types_supported=_strings(body, "grant_types_supported"),
        issuer_is_template=templated,
        scopes_supported=_optional_strings(body, "scopes_supported"),
    )
