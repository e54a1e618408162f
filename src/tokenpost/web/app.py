"""`create_app`: the web page as a FastAPI application, from already built objects.

Nothing is read at import time: the services come in as `wiring.App`, the page's own settings as
`WebConfig`. Routers are listed in `ROUTERS`, one per concern; the templates a setting's row
offers as token actions in `TOKEN_ACTIONS`. A feature that adds pages adds its router (and its
token action) to these lists.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tokenpost.errors import TokenpostError, UsageError
from tokenpost.i18n import show
from tokenpost.text import N_
from tokenpost.web import (
    auth,
    pages_alerts,
    pages_check,
    pages_providers,
    pages_settings,
    pages_status,
    pages_tokens,
    tokens,
)
from tokenpost.web.api import routes as api_routes
from tokenpost.web.config import WebConfig
from tokenpost.web.headers import SecurityHeaders
from tokenpost.web.security import NO_PAGE, Refused, SignInRequired, guard
from tokenpost.web.sessions import Sessions
from tokenpost.web.state import WebState
from tokenpost.web.templating import build_environment
from tokenpost.web.throttle import LoginThrottle
from tokenpost.web.visit import visit

if TYPE_CHECKING:
    from tokenpost.wiring import App

log = logging.getLogger("tokenpost.web")

STATIC: Final = Path(__file__).parent / "static"

ROUTERS: Final[tuple[APIRouter, ...]] = (
    auth.router,
    pages_status.router,
    pages_settings.router,
    pages_providers.router,
    pages_alerts.router,
    pages_check.router,
    pages_tokens.router,
    tokens.router,
    api_routes.router,
)
TOKEN_ACTIONS: Final[tuple[str, ...]] = (
    "components/token_action_get.html",
    "components/action_delete.html",
)


def create_app(app: App, config: WebConfig) -> FastAPI:
    """The web page over `app`'s services.

    Args:
        app: the opened services (`wiring.open_app`); the page never closes them. Who may sign
            in: `app.accounts`.
        config: the page's own settings.
    """
    web = WebState(
        app=app,
        config=config,
        sessions=Sessions(idle_s=config.session_idle_s),
        throttle=LoginThrottle(config.lockout),
        env=build_environment(),
        token_actions=list(TOKEN_ACTIONS),
    )

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        yield
        # Sessions live in memory: a stopped page leaves none behind.
        log.debug("web page stopped; %d sessions ended", len(web.sessions))

    api = FastAPI(
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(guard)],
    )
    api.state.web = web
    api.add_middleware(SecurityHeaders)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        api.include_router(router)
    _error_pages(api)
    return api


def _error_pages(api: FastAPI) -> None:
    async def error_page(request: Request, status: int, message: str) -> Response:
        found = await visit(request)
        return found.page("pages/error.html", status=status, message=found.gettext(message))

    @api.exception_handler(SignInRequired)
    async def sign_in(request: Request, _error: SignInRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @api.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        return await error_page(request, error.status, error.message)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return await error_page(request, 404, NO_PAGE)
        if error.status_code == 405:
            return await error_page(request, 405, N_("This page does not take that request."))
        return HTMLResponse(status_code=error.status_code)

    @api.exception_handler(TokenpostError)
    async def failed(request: Request, error: TokenpostError) -> Response:
        # The store could not be read, a record is damaged…: said in the page's language, with
        # what to do (a TokenpostError's message never holds a secret).
        status = 400 if isinstance(error, UsageError) else 503
        log.warning("web: %s %s failed: %s", request.method, request.url.path, error)
        try:
            found = await visit(request)
        except TokenpostError:
            # Not even the session could be checked (the store is gone): a bare page.
            return PlainTextResponse(show(error), status_code=status)
        return found.page("pages/error.html", status=status, message=show(error, found.lang))

    @api.exception_handler(RequestValidationError)
    async def bad_request(request: Request, _error: RequestValidationError) -> Response:
        return await error_page(request, 400, N_("The request was not understood."))
