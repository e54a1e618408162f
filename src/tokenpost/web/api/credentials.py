"""Who is asking: an API token, or the web page's signed-in session.

- ``Authorization: Bearer tpat_…``: the token is checked here (`Accounts.authenticate_api_token`);
  the page's guard lets such requests through to this check (`bearer.presents_api_token`). An
  ``Authorization`` header that is not a valid API token is refused (401), whatever cookie
  comes with it.
- Otherwise the session cookie, already checked by the page's guard (`web.security.guard`):
  signed in, and for a change its CSRF token, its origin and the administrator role.

The roles are the page's: a viewer reads (GET), only an administrator changes anything.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tokenpost.accounts import Principal, Role
from tokenpost.text import Text
from tokenpost.web.api.bearer import AUTHORIZATION, bearer_token
from tokenpost.web.api.codes import ErrorCode
from tokenpost.web.api.errors import ApiError, unauthorized
from tokenpost.web.security import SAFE_METHODS
from tokenpost.web.visit import VisitDep

ADMIN_ONLY = Text("Refused: only an administrator may change this.")


async def principal(request: Request, visit: VisitDep) -> Principal:
    """The dependency of every API route (see the module's docstring)."""
    if AUTHORIZATION in request.headers:
        token = bearer_token(request)
        found = None
        if token is not None:
            found = await visit.web.app.accounts.authenticate_api_token(token)
        if found is None:
            raise unauthorized(Text("the API token is not valid (revoked, or never made)"))
        if request.method not in SAFE_METHODS and not found.is_admin:
            raise ApiError(ErrorCode.FORBIDDEN, ADMIN_ONLY)
        return found
    session = visit.session
    if session is None or session.account is None:  # the guard lets none through: kept safe
        raise unauthorized(Text("this needs credentials"))
    role = Role.ADMIN if session.is_admin else Role.VIEWER
    return Principal(session.account, role, "password")


PrincipalDep = Annotated[Principal, Depends(principal)]
