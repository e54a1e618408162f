"""Every failure of the JSON API as one JSON shape with a stable code (`codes`).

``{"error": {"code": …, "message": …, "field": …, "fix": …, "reason": …, "problems": […]}}``, the
message and the fix in the language of the request (Accept-Language, or the session's choice).
`answer` turns whatever a route raised — the page guard's refusals, FastAPI's request
validation, tokenpost's errors, `ApiError` — into that answer. Nothing a request sent is echoed
(a rejected value may be a password), and no error message of tokenpost holds a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tokenpost.errors import (
    AuthorizationEndedError,
    ConflictError,
    DamagedRecordError,
    FlightLockBusyError,
    NotFoundError,
    OAuthError,
    StoreError,
    TokenpostError,
    UsageError,
    ValidationError,
)
from tokenpost.i18n import show
from tokenpost.services.flows import AddressRefusedError
from tokenpost.text import Text, as_text
from tokenpost.web import language
from tokenpost.web.api.bearer import AUTHORIZATION
from tokenpost.web.api.codes import STATUS, ErrorCode
from tokenpost.web.security import Refused, SignInRequired
from tokenpost.web.visit import visit

log = logging.getLogger("tokenpost.web")

SIGN_IN: Final = Text(
    "send an API token (made by 'tokenpost admin token create NAME') as a bearer token in the "
    "Authorization header, or sign in on the web page"
)


class ApiError(Exception):
    """An answer other than success: `code` decides the status."""

    def __init__(
        self,
        code: ErrorCode,
        message: Text,
        *,
        field: str | None = None,
        fix: Text | None = None,
        reason: str | None = None,
        problems: Sequence[tuple[str, object]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code.value)
        self.code = code
        self.message = message
        self.field = field
        self.fix = fix
        self.reason = reason
        self.problems = tuple(problems)
        self.headers = headers or {}


def unauthorized(message: Text) -> ApiError:
    return ApiError(
        ErrorCode.UNAUTHORIZED, message, fix=SIGN_IN, headers={"WWW-Authenticate": "Bearer"}
    )


# The code of each kind of tokenpost error (`errors`' tree), the first that fits; the rest are
# failures of a provider (or of a mail server, reached through the provider's settings).
_KINDS: Final[tuple[tuple[type[TokenpostError], ErrorCode], ...]] = (
    (ValidationError, ErrorCode.VALIDATION_FAILED),
    (AddressRefusedError, ErrorCode.ADDRESS_REFUSED),
    (NotFoundError, ErrorCode.NOT_FOUND),
    (UsageError, ErrorCode.CONFLICT),
    (AuthorizationEndedError, ErrorCode.AUTHORIZATION_ENDED),
    (DamagedRecordError, ErrorCode.DAMAGED_RECORD),
    (FlightLockBusyError, ErrorCode.BUSY),
    (ConflictError, ErrorCode.BUSY),
    (StoreError, ErrorCode.STORE_UNAVAILABLE),
)


def from_tokenpost(error: TokenpostError) -> ApiError:
    """The API's error for a tokenpost error: its code, message, fields and fix."""
    code = next((c for kind, c in _KINDS if isinstance(error, kind)), ErrorCode.PROVIDER_ERROR)
    problems: list[tuple[str, object]] = []
    field = reason = None
    if isinstance(error, ValidationError):
        problems = [(p.field, p.rule) for p in error.problems]
        field = problems[0][0] if problems else None
    elif isinstance(error, AddressRefusedError):
        field, reason = "address", error.problem
    elif isinstance(error, OAuthError):
        reason = error.error or None
    fix = getattr(error, "fix", None)
    return ApiError(
        code,
        error.as_text(),
        field=field,
        fix=as_text(fix) if fix is not None else None,
        reason=reason,
        problems=problems,
    )


async def answer(request: Request, error: Exception) -> Response:
    """The JSON answer for `error`, raised while serving an API route."""
    found = await _api_error(request, error)
    lang = await _language(request)
    body: dict[str, Any] = {
        "code": found.code.value,
        "message": show(found.message, lang),
        "field": found.field,
        "fix": show(found.fix, lang) if found.fix is not None else None,
        "reason": found.reason,
        "problems": [
            {"field": f, "message": show(Text(rule) if isinstance(rule, str) else rule, lang)}
            for f, rule in found.problems
        ],
    }
    return JSONResponse({"error": body}, status_code=STATUS[found.code], headers=found.headers)


async def _language(request: Request) -> str:
    """The request's language; from Accept-Language alone when even the session cannot be
    checked (the store is gone)."""
    try:
        return (await visit(request)).lang
    except TokenpostError:
        return language.choose(None, request.headers.get("accept-language"))


async def _signed_in(request: Request) -> bool:
    try:
        return (await visit(request)).signed_in  # checked by the guard already
    except TokenpostError:
        return False


async def _api_error(request: Request, error: Exception) -> ApiError:  # noqa: PLR0911
    match error:
        case ApiError():
            return error
        case SignInRequired():
            return unauthorized(Text("this needs credentials"))
        case Refused():
            # The page guard refused a request without an API token. Without a signed-in
            # session it had no credential at all: 401; else the session may not do it: 403.
            if not await _signed_in(request) and AUTHORIZATION not in request.headers:
                return unauthorized(Text("this needs credentials"))
            return ApiError(ErrorCode.FORBIDDEN, Text(error.message))
        case RequestValidationError():
            return _invalid_request(error)
        case TokenpostError():
            return from_tokenpost(error)
        case StarletteHTTPException(status_code=404):
            return ApiError(ErrorCode.NOT_FOUND, NO_ROUTE)
        case StarletteHTTPException(status_code=status) if 400 <= status < 500:
            # FastAPI could not read the body (not JSON, not UTF-8, too large).
            return ApiError(
                ErrorCode.VALIDATION_FAILED,
                Text("the request's body could not be read: send JSON in UTF-8"),
                field="body",
            )
        case _:
            log.exception("the API failed on %s %r", request.method, request.url.path)
            return ApiError(
                ErrorCode.INTERNAL_ERROR, Text("tokenpost failed on this request; see its log")
            )


NO_ROUTE: Final = Text("there is no such API route: see /openapi.json")


def _invalid_request(error: RequestValidationError) -> ApiError:
    """FastAPI's 422 in the API's own shape: which field, never the value it had."""
    problems: list[tuple[str, object]] = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part not in ("body",)]
        field = ".".join(location) or "body"
        if location[-1:] == ["setting_id"]:
            problems.append((field, Text("a setting is 'smtp' or 'pop:NAME'")))
        else:
            problems.append((field, _rule(str(item.get("type", "")))))
    first = problems[0][0] if problems else None
    return ApiError(
        ErrorCode.VALIDATION_FAILED,
        Text("the request does not fit the API's schema (see /openapi.json)"),
        field=first,
        problems=problems,
    )


# pydantic's error types (by their start) and the rule each breaks: its messages are English only.
_RULES: Final = (
    (("missing",), Text("is required")),
    (("extra_forbidden",), Text("is not a field of this request")),
    (("json", "model_attributes", "dict"), Text("must be a JSON object as the schema describes")),
    (
        ("int", "float", "greater_than", "less_than"),
        Text("must be a whole number in the range the schema gives"),
    ),
    (("bool",), Text("must be true or false")),
    (("enum", "literal_error", "union_tag"), Text("must be one of the values the schema lists")),
    (
        ("string", "too_", "list_type"),
        Text("must be text as the schema describes (one line, not too long)"),
    ),
)


def _rule(kind: str) -> Text:
    """The rule text of pydantic's error type `kind`."""
    for starts, rule in _RULES:
        if kind.startswith(starts):
            return rule
    return Text("does not fit the schema")
