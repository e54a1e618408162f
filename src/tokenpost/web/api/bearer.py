"""Which requests carry an API token, for the page's guard (`web.security`).

A route of the JSON API (a `TokenRoute`) authenticates an ``Authorization`` header itself
(`credentials`); such a request carries no ambient credential a browser would add on its own
(RFC 6750 §2.1), so it needs no CSRF token. Every other request — any page, or an API request
with the session cookie — goes through the guard as before.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request
from fastapi.routing import APIRoute

from tokenpost.secret import Secret

AUTHORIZATION: Final = "authorization"
SCHEME: Final = "bearer"


class TokenRoute(APIRoute):
    """A route that authenticates the ``Authorization`` header itself: every route of the JSON
    API (its router adds the `credentials.principal` dependency to each)."""


def presents_api_token(request: Request) -> bool:
    """True when the request is for a `TokenRoute` and has an ``Authorization`` header: the route
    checks it (and refuses it when it is not a valid API token)."""
    return isinstance(request.scope.get("route"), TokenRoute) and AUTHORIZATION in request.headers


def bearer_token(request: Request) -> Secret | None:
    """The token of ``Authorization: Bearer <token>``, or None for another scheme or none."""
    scheme, _, token = request.headers.get(AUTHORIZATION, "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME or not token:
        return None
    return Secret(token)
