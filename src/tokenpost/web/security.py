"""Who may send which request: one guard in front of every route, so a new route cannot miss it.

- GET and HEAD change nothing. Every page but the login needs a signed-in session; without one
  the browser is sent to the login (`SignInRequired`).
- Every other method changes something and needs, in this order:
  1. same origin: an `Origin` header (or, without one, a `Referer`) naming another origin is
     refused. The page's own Referrer-Policy is no-referrer, under which browsers send
     ``Origin: null`` and no Referer with its own forms (Fetch standard, "append a request Origin
     header"): an absent or null origin is left to the token;
  2. a session, and its CSRF token (synchronizer token) in the form field ``csrf`` or the header
     ``X-CSRF-Token``;
  3. a signed-in session, except for the login itself and the language switch;
  4. an administrator, except for logging out and the language switch: a viewer sees
     everything and changes nothing (403).

Refusals are `Refused` (rendered as an error page with its status by `app`).
"""

from __future__ import annotations

import secrets
from typing import Final
from urllib.parse import urlsplit

from fastapi import Request

from tokenpost.text import N_
from tokenpost.web.api.bearer import presents_api_token
from tokenpost.web.visit import VisitDep

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"

NO_PAGE: Final = N_("There is no such page.")

# Pages shown without signing in. The OAuth callback checks the session itself: the browser
# comes back from the provider's site without the SameSite=Strict cookie (`web.tokens`).
PUBLIC_PAGES: Final = frozenset({"/login", "/oauth/callback", "/openapi.json"})
# Changes allowed before signing in (they still need the session's CSRF token).
SIGNED_OUT_CHANGES: Final = frozenset({"/login", "/language"})
# Changes a viewer may make: only to its own session.
VIEWER_CHANGES: Final = frozenset({"/logout", "/language"})


class Refused(Exception):
    """A request the guard refuses; `message` is a msgid shown on the error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInRequired(Exception):
    """A page that needs a signed-in session: the browser goes to the login."""


async def guard(request: Request, visit: VisitDep) -> None:
    """The app-wide dependency; see the module's docstring."""
    if presents_api_token(request):
        return  # a JSON API route, which checks the API token itself (web.api.credentials)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    if request.method in SAFE_METHODS:
        if path not in PUBLIC_PAGES and not visit.signed_in:
            raise SignInRequired
        return
    if not same_origin(request):
        raise Refused(403, N_("Refused: the request came from another site."))
    if visit.session is None or not secrets.compare_digest(
        await _csrf_token(request), visit.session.csrf
    ):
        raise Refused(
            403,
            N_(
                "Refused: the page was out of date or the session had ended. Reload it and try "
                "again."
            ),
        )
    if path not in SIGNED_OUT_CHANGES and not visit.signed_in:
        raise Refused(403, N_("Refused: sign in first."))
    if path not in VIEWER_CHANGES and path not in SIGNED_OUT_CHANGES and not visit.is_admin:
        raise Refused(403, N_("Refused: only an administrator may change this."))


async def _csrf_token(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        if isinstance(value, str):
            return value
    return ""


def same_origin(request: Request) -> bool:
    """False when Origin (or, without it, Referer) names an origin other than the page's."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return _origin_of(origin) == _own_origin(request)
    referer = request.headers.get("referer")
    if referer:
        return _origin_of(referer) == _own_origin(request)
    return True


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _own_origin(request: Request) -> tuple[str, str, int | None]:
    scheme = request.url.scheme
    return _origin_of(f"{scheme}://{request.headers.get('host', '')}")


def _origin_of(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", "", None)
    scheme = parts.scheme.lower()
    return (scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme))
