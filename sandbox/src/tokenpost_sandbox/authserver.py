"""The sandbox authorization server as a Starlette app: the OAuth endpoints tokenpost talks to.

    GET  /.well-known/oauth-authorization-server   RFC 8414 metadata (also at the OIDC path)
    POST /device                                   RFC 8628 §3.1 device authorization
    POST /token                                    RFC 6749 §3.2 (code, device, refresh, client)
    GET  /authorize                                the "browser": decides at once, 302 back
                                                   (knob interactive: the sign-in page)
    POST /revoke                                   RFC 7009
    POST /introspect                               RFC 7662 (the mail server's client only)
    GET  /activate                                 verification_uri: a person's page (`pages`)
    POST /activate                                 the demo account approves or denies a code
    POST /authorize                                the sign-in page's answer (knob: interactive)

Each endpoint first counts the request, then waits `response_delay`, then answers an injected
fault if one is armed (see `control.py`), and only then runs the real logic. The OAuth logic is
authlib's (`grants.py`), reached through `oauth2_starlette`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from tokenpost.secret import Secret
from tokenpost_sandbox.control import control_routes
from tokenpost_sandbox.grants import SandboxAuthorizationServer
from tokenpost_sandbox.models import (
    DEVICE_CODE_GRANT_TYPE,
    BrowserDecision,
    DeviceDecision,
    Endpoint,
    FaultKind,
    PageDecision,
    User,
)
from tokenpost_sandbox.oauth2_starlette import BodyTooLargeError, FormRequest, read_request
from tokenpost_sandbox.pages import (
    STYLESHEET_PATH,
    DemoAccount,
    activate_page,
    done_page,
    normalize_user_code,
    sign_in_page,
    stylesheet_response,
)
from tokenpost_sandbox.store import SandboxStore

# Far above tokenpost's response limit (64 KiB) so that only a client without one accepts it.
OVERSIZED_BYTES: Final = 1024 * 1024
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SCOPES_SUPPORTED: Final = ("openid", "offline_access", "mail.send", "mail.read")

View = Callable[[FormRequest], Awaitable[Response]]


def create_app(
    store: SandboxStore, issuer: str, control_key: Secret, demo_password: Secret
) -> Starlette:
    """The whole sandbox for `issuer`: the OAuth endpoints, the pages where a person signs in
    as the `browser_user` knob with `demo_password`, and the control API (needs `control_key`)."""
    server = SandboxAuthorizationServer(store, issuer)

    def account() -> DemoAccount:
        return DemoAccount(store.knobs.browser_user, demo_password.reveal())

    def guarded(endpoint: Endpoint, view: View) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            fault = store.take_fault(endpoint)
            if (delay := store.knobs.response_delay) > 0:
                await asyncio.sleep(delay)
            if fault is not None:
                return fault_response(fault)
            try:
                form = await read_request(request)
            except BodyTooLargeError as error:
                return PlainTextResponse(f"{error}\n", 413)
            return await view(form)

        return run

    async def metadata(request: FormRequest) -> Response:
        return JSONResponse(authorization_server_metadata(issuer))

    async def device(request: FormRequest) -> Response:
        response: Response = server.create_endpoint_response("device_authorization", request)
        return response

    async def token(request: FormRequest) -> Response:
        response: Response = server.create_token_response(request)
        return response

    async def revoke(request: FormRequest) -> Response:
        response: Response = server.create_endpoint_response("revocation", request)
        return response

    async def introspect(request: FormRequest) -> Response:
        response: Response = server.create_endpoint_response("introspection", request)
        return response

    routes: list[BaseRoute] = [
        Route(path, guarded(Endpoint.METADATA, metadata), methods=["GET"])
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
    ]
    authorize = _authorize_view(server, store, issuer, account)
    views: list[tuple[str, Endpoint, View, list[str]]] = [
        ("/device", Endpoint.DEVICE, device, ["POST"]),
        ("/token", Endpoint.TOKEN, token, ["POST"]),
        ("/revoke", Endpoint.REVOKE, revoke, ["POST"]),
        ("/introspect", Endpoint.INTROSPECT, introspect, ["POST"]),
        ("/authorize", Endpoint.AUTHORIZE, authorize, ["GET", "POST"]),
        ("/activate", Endpoint.ACTIVATE, _activate_view(store, account), ["GET", "POST"]),
    ]
    routes.extend(
        Route(path, guarded(endpoint, view), methods=methods)
        for path, endpoint, view, methods in views
    )
    routes.append(Route(STYLESHEET_PATH, _stylesheet, methods=["GET"]))
    routes.extend(control_routes(store, control_key))
    return Starlette(routes=routes)


def authorization_server_metadata(issuer: str) -> dict[str, object]:
    """RFC 8414 §2 metadata (plus RFC 8628 §4 and RFC 9207 §3 fields)."""
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "device_authorization_endpoint": issuer + "/device",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        # RFC 8414 §2 (RECOMMENDED): the sandbox grants any scope; these are the ones it names.
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            DEVICE_CODE_GRANT_TYPE,
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "authorization_response_iss_parameter_supported": True,
    }


def fault_response(kind: FaultKind) -> Response:
    """The canned wrong answer for an injected fault."""
    match kind:
        case FaultKind.HTTP_503:
            return PlainTextResponse("service unavailable\n", 503, {"Retry-After": "1"})
        case FaultKind.NON_JSON:
            return HTMLResponse("<html><body>maintenance</body></html>", 200)
        case FaultKind.OVERSIZED:
            body: dict[str, object] = {"token_type": "Bearer", "access_token": "sbx_at_" + "x" * 40}
            body["padding"] = "x" * OVERSIZED_BYTES
            return _json(body, 200)
        case FaultKind.MISSING_ACCESS_TOKEN:
            return _json({"token_type": "Bearer", "expires_in": 3600}, 200)
        case FaultKind.INVALID_CLIENT:
            challenge = {"WWW-Authenticate": 'Basic realm="sandbox"'}
            return _json({"error": "invalid_client"}, 401, challenge)
        case FaultKind.INVALID_GRANT | FaultKind.SLOW_DOWN:
            return _json({"error": kind.value}, 400)


def _json(body: dict[str, object], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status, {**_NO_STORE, **(headers or {})}, media_type="application/json"
    )


def _authorize_view(
    server: SandboxAuthorizationServer,
    store: SandboxStore,
    issuer: str,
    account: Callable[[], DemoAccount],
) -> View:
    """RFC 6749 §4.1.1-4.1.2 as a browser that decides at once, per the knobs, or (knob
    `interactive`) as a sign-in page a person answers; its form posts back here."""

    async def view(request: FormRequest) -> Response:
        knobs = store.knobs
        try:
            grant = server.get_consent_grant(request, end_user=None)
        except OAuth2Error as error:
            if not error.redirect_uri:
                # §4.1.2.1: never redirect to a client or redirect_uri that did not validate.
                return _json({"error": error.error, "error_description": error.description}, 400)
            response: Response = server.handle_error_response(request, error)
        else:
            user = User(knobs.browser_user)
            if request.method == "POST":
                refused = _refused_sign_in(request, account())
                if refused is not None:
                    return _sign_in_again(request, grant, account(), *refused)
                approved = request.form_value("decision") == "approve"
            elif knobs.browser_decision is BrowserDecision.INTERACTIVE:
                return _sign_in_again(request, grant, account(), None, 200)
            else:
                approved = knobs.browser_decision is BrowserDecision.APPROVE
            response = server.create_authorization_response(
                grant.request, grant_user=user if approved else None, grant=grant
            )
        return _finish_redirect(
            response,
            iss=knobs.redirect_iss_override or issuer,
            state=knobs.redirect_state_override,
        )

    return view


def _finish_redirect(response: Response, *, iss: str, state: str | None) -> Response:
    """Add `iss` (RFC 9207 §2) to a redirect and, when a test asks, replace `state`."""
    location = response.headers.get("Location")
    if location is None:
        return response
    parts = urlsplit(location)
    replaced = {"iss": iss} if state is None else {"iss": iss, "state": state}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in replaced]
    query.extend(replaced.items())
    response.headers["Location"] = urlunsplit(parts._replace(query=urlencode(query)))
    return response


def _sign_in_again(
    request: FormRequest, grant: Any, account: DemoAccount, error: str | None, status: int
) -> Response:
    query = urlsplit(request.url).query
    return sign_in_page(
        account,
        action="/authorize?" + query,
        client_id=grant.client.client_id,
        scope=grant.request.scope or "",
        user=request.form_value("username"),
        error=error,
        status=status,
    )


def _refused_sign_in(request: FormRequest, account: DemoAccount) -> tuple[str, int] | None:
    """Why a posted sign-in form is refused (message, status), or None when it may proceed."""
    if request.form_value("decision") not in {"approve", "deny"}:
        return "Choose Approve or Deny.", 400
    user = request.form_value("username").strip()
    password = request.form_value("password")
    right_user = user.casefold() == account.user.casefold()
    right_password = secrets.compare_digest(password.encode(), account.password.encode())
    if not (right_user and right_password):
        return "The user name or password is wrong: use the demo account shown above.", 401
    return None


def _activate_view(store: SandboxStore, account: Callable[[], DemoAccount]) -> View:
    """RFC 8628 §3.3: the user enters the code, signs in and approves or denies."""

    async def view(request: FormRequest) -> Response:
        if request.method != "POST":
            return activate_page(account(), user_code=request.first("user_code") or "")
        demo = account()
        user_code = normalize_user_code(request.form_value("user_code"))
        user = request.form_value("username")
        refused = _refused_sign_in(request, demo)
        if refused is not None:
            message, status = refused
            return activate_page(demo, user_code=user_code, user=user, error=message, status=status)
        approved = request.form_value("decision") == "approve"
        outcome = store.decide_device_once(
            user_code,
            DeviceDecision.APPROVED if approved else DeviceDecision.DENIED,
            User(demo.user) if approved else None,
            time.time(),
        )
        match outcome:
            case PageDecision.DECIDED if approved:
                return done_page(
                    "Device connected",
                    f"You approved the code {user_code}. The device receives its token at its "
                    "next check; you can close this page.",
                )
            case PageDecision.DECIDED:
                return done_page(
                    "Access denied", f"You denied the code {user_code}. The device gets no token."
                )
            case PageDecision.UNKNOWN:
                message = (
                    f"No device is waiting with the code {user_code}. Check the code on the "
                    "device's screen: it may have started again with a new one."
                )
                status = 404
            case PageDecision.EXPIRED:
                message = (
                    f"The code {user_code} has expired. Start again on the device to get a new one."
                )
                status = 400
            case PageDecision.ALREADY_DECIDED:
                message = (
                    f"The code {user_code} was already approved or denied. Start again on the "
                    "device if it still needs a token."
                )
                status = 409
        return activate_page(demo, user_code=user_code, user=user, error=message, status=status)

    return view


async def _stylesheet(request: Request) -> Response:
    return stylesheet_response()
