"""The API's routers: every route a `TokenRoute` with the credentials dependency, answering any
failure in the API's JSON shape (`errors.answer`), and the error answers in the OpenAPI
document (each status with the codes it may carry)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from tokenpost.web.api.bearer import TokenRoute
from tokenpost.web.api.codes import codes_of
from tokenpost.web.api.credentials import PrincipalDep
from tokenpost.web.api.errors import answer
from tokenpost.web.api.models import ErrorBody
from tokenpost.web.security import SAFE_METHODS

log = logging.getLogger("tokenpost.web")

PREFIX: Final = "/api/v1"


class ApiRoute(TokenRoute):
    """Answers whatever its handler (and the dependencies before it: the page guard, the
    credentials) raised as the API's JSON error; logs each change and who made it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as error:  # noqa: BLE001 - every failure becomes a JSON answer
                response = await answer(request, error)
            if request.method not in SAFE_METHODS:
                who = getattr(request.state, "principal", None)
                log.info(
                    "api: %s %s %r: %d",
                    who.name if who is not None else "-",
                    request.method,
                    request.url.path,
                    response.status_code,
                )
            return response

        return handle


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": ErrorBody,
            "description": "Error codes: " + ", ".join(c.value for c in codes_of(status)),
        }
        for status in statuses
    }


# Every route may answer these (credentials, roles, a path naming nothing, the request's shape,
# tokenpost itself).
COMMON_ERRORS: Final = _error_responses(401, 403, 404, 422, 500, 503)


def api_router() -> APIRouter:
    """A router of the API: every route under `PREFIX`, credentials checked."""
    return APIRouter(
        prefix=PREFIX,
        route_class=ApiRoute,
        dependencies=[Depends(remember_principal)],
        responses=dict(COMMON_ERRORS),
    )


async def remember_principal(request: Request, who: PrincipalDep) -> None:
    """`credentials.principal` for every route; who it was is kept for the log line."""
    request.state.principal = who


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of these error statuses, for a route's `responses`."""
    return _error_responses(*statuses)
