"""The sandbox's control API: how tests play the user and the operator of the provider.

JSON in and out, under `/control/`, for loopback peers that hold the control key: the random key
the process writes to DIR/control.key (mode 0600), sent as ``Authorization: Bearer KEY``. Without
it the answer is 401, so another user of the machine cannot mint tokens.

    POST reset                       clear every grant, code, fault, counter and knob
    POST approve {user_code, user?}  the user approves a device code (user: browser_user knob)
    POST deny    {user_code}         the user denies it
    POST expire  {user_code}         the device code expires now
    GET  config                      the knobs
    POST config  {knob: value, ...}  change knobs (see `models.Knobs`); answers the new knobs
    POST fault   {endpoint, kind, count?}  the next `count` (default 1) requests get `kind`
    POST revoke_user {user}          every grant of that user is revoked
    GET  stats                       request counts, grants by type, replays, revocations

Bad input answers 400 with `{"error": "invalid_request", "problems": [{field, rule}]}`; an
unknown user code answers 404.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tokenpost.errors import FieldProblem, NotFoundError, ValidationError
from tokenpost.secret import Secret
from tokenpost_sandbox.models import (
    FAULTABLE_ENDPOINTS,
    DeviceDecision,
    Endpoint,
    Fault,
    FaultKind,
    User,
)
from tokenpost_sandbox.store import SandboxStore

_OK = {"ok": True}
PREFIX = "/control/"
KEY_FILE = "control.key"

Handler = Callable[[Request], Awaitable[Response]]


def control_routes(store: SandboxStore, key: Secret) -> list[BaseRoute]:
    """The `/control/` routes acting on `store`, for requests that present `key`."""

    async def reset(request: Request) -> Response:
        store.reset()
        return JSONResponse(_OK)

    async def approve(request: Request) -> Response:
        body = await _body(request)
        user = _optional_text(body, "user") or store.knobs.browser_user
        store.decide_device(_text(body, "user_code"), DeviceDecision.APPROVED, User(user))
        return JSONResponse(_OK)

    async def deny(request: Request) -> Response:
        store.decide_device(_text(await _body(request), "user_code"), DeviceDecision.DENIED, None)
        return JSONResponse(_OK)

    async def expire(request: Request) -> Response:
        store.expire_device(_text(await _body(request), "user_code"), time.time())
        return JSONResponse(_OK)

    async def get_config(request: Request) -> Response:
        return JSONResponse(store.knobs.to_json())

    async def set_config(request: Request) -> Response:
        return JSONResponse(store.update_knobs(await _body(request)).to_json())

    async def fault(request: Request) -> Response:
        endpoint, armed = _parse_fault(await _body(request))
        store.set_fault(endpoint, armed)
        return JSONResponse(_OK)

    async def revoke_user(request: Request) -> Response:
        return JSONResponse({"revoked": store.revoke_user(_text(await _body(request), "user"))})

    async def stats(request: Request) -> Response:
        return JSONResponse(store.stats(time.time()).to_json())

    routes: list[tuple[str, Handler, str]] = [
        ("reset", reset, "POST"),
        ("approve", approve, "POST"),
        ("deny", deny, "POST"),
        ("expire", expire, "POST"),
        ("config", get_config, "GET"),
        ("config", set_config, "POST"),
        ("fault", fault, "POST"),
        ("revoke_user", revoke_user, "POST"),
        ("stats", stats, "GET"),
    ]
    return [
        Route(PREFIX + name, _guarded(handler, key), methods=[method])
        for name, handler, method in routes
    ]


def _guarded(handler: Handler, key: Secret) -> Handler:
    """Loopback peers with the key only; bad input answers 400 with the problems, an unknown
    code 404."""

    async def run(request: Request) -> Response:
        peer = "" if request.client is None else request.client.host
        if not _is_loopback(peer):
            return _error("forbidden", "the control API answers loopback peers only", 403)
        if not _presents(request, key):
            response = _error(
                "unauthorized",
                f"the control API needs its key (the file {KEY_FILE} in the sandbox's directory), "
                "sent as 'Authorization: Bearer KEY'",
                401,
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="sandbox control"'
            return response
        try:
            return await handler(request)
        except ValidationError as error:
            problems = [{"field": p.field, "rule": p.rule} for p in error.problems]
            return JSONResponse({"error": "invalid_request", "problems": problems}, 400)
        except NotFoundError as error:
            return _error("not_found", str(error), 404)

    return run


def _parse_fault(body: Mapping[str, object]) -> tuple[Endpoint, Fault]:
    endpoint = next((e for e in FAULTABLE_ENDPOINTS if e.value == body.get("endpoint")), None)
    kind = next((k for k in FaultKind if k.value == body.get("kind")), None)
    count = body.get("count", 1)
    valid_count = isinstance(count, int) and not isinstance(count, bool) and count >= 0
    problems: list[FieldProblem] = []
    if endpoint is None:
        names = sorted(e.value for e in FAULTABLE_ENDPOINTS)
        problems.append(FieldProblem("endpoint", "must be one of: " + ", ".join(names)))
    if kind is None:
        problems.append(FieldProblem("kind", "must be one of: " + ", ".join(FaultKind)))
    if not valid_count:
        problems.append(FieldProblem("count", "must be an integer >= 0"))
    if endpoint is None or kind is None or not isinstance(count, int) or problems:
        raise ValidationError(problems, subject="fault")
    return endpoint, Fault(kind, count)


async def _body(request: Request) -> Mapping[str, object]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ValidationError([FieldProblem("body", "must be a JSON object")])
    return body


def _text(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError([FieldProblem(name, "is required and must be a non-empty string")])
    return value


def _optional_text(body: Mapping[str, object], name: str) -> str | None:
    return None if body.get(name) is None else _text(body, name)


def _presents(request: Request, key: Secret) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(credentials.strip().encode(), key.reveal().encode())


def _error(error: str, description: str, status: int) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status)


def _is_loopback(peer: str) -> bool:
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
