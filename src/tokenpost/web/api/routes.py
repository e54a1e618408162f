"""The JSON API as one router for `web.app.ROUTERS`: its parts, its OpenAPI document, and last
an answer for every other path under ``/api/v1`` (404, or 405 with the methods the path takes)."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match

from tokenpost.text import Text
from tokenpost.web.api import checks, settings, status, tokens
from tokenpost.web.api.codes import ErrorCode
from tokenpost.web.api.document import DOCUMENT_PATH, api_document
from tokenpost.web.api.errors import NO_ROUTE, ApiError
from tokenpost.web.api.routing import api_router

PARTS: Final = (status.router, settings.router, tokens.router, checks.router)
METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def api_routes() -> list[BaseRoute]:
    """Every route of the API (each under /api/v1), but the answer for other paths."""
    return [route for part in PARTS for route in part.routes]


router = APIRouter()
for part in PARTS:
    router.include_router(part)


@router.get(DOCUMENT_PATH, include_in_schema=False)
async def openapi_document(request: Request) -> Response:
    state = request.app.state
    document = getattr(state, "api_document", None)
    if document is None:
        document = state.api_document = api_document(api_routes())
    return JSONResponse(document)


_rest = api_router()


@_rest.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
async def no_such_route(request: Request) -> None:
    allowed = sorted(
        method
        for route in api_routes()
        if route.matches(request.scope)[0] is not Match.NONE
        for method in getattr(route, "methods", None) or ()
    )
    if allowed:
        raise ApiError(
            ErrorCode.METHOD_NOT_ALLOWED,
            Text("this API route takes {methods}", methods=", ".join(allowed)),
            headers={"Allow": ", ".join(allowed)},
        )
    raise ApiError(ErrorCode.NOT_FOUND, NO_ROUTE)


router.include_router(_rest)
