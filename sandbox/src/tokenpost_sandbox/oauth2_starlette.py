# mypy: disallow-subclassing-any=False
# (authlib ships no type information, so the classes below extend `Any` bases.)
"""authlib's OAuth 2.0 server, bound to Starlette.

authlib's `AuthorizationServer` is framework-neutral and synchronous: a framework supplies four
hooks (`create_oauth2_request`, `create_json_request`, `handle_response`, `send_signal`), as its
own Flask and Django integrations do. Starlette reads a request body asynchronously, so each view
first reads the whole request into a `FormRequest` (`await read_request(request)`), then hands
that to the server's synchronous methods; `handle_response` turns authlib's
`(status, body, headers)` into a Starlette `Response`.

Parameters are merged the way authlib's own integrations merge them: `payload.data` holds the
query string, then the form body (the first value of each name wins), `payload.datalist` every
value of both, so a parameter sent twice is seen twice (RFC 6749 §3.1).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Payload, OAuth2Request
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

FORM_TYPE: Final = "application/x-www-form-urlencoded"
# Far above anything an OAuth request carries; a larger body is refused before it is parsed.
MAX_BODY_BYTES: Final = 1024 * 1024

Params = Mapping[str, list[str]]


class BodyTooLargeError(ValueError):
    """The request body exceeds `MAX_BODY_BYTES`."""


@dataclass(frozen=True, slots=True)
class FormRequest:
    """One HTTP request, read in full: what authlib's synchronous code may look at."""

    method: str
    url: str
    headers: Headers
    args: Params
    form: Params
    body: bytes

    def form_value(self, name: str) -> str:
        """The first value of `name` in the form body, or ""."""
        values = self.form.get(name)
        return values[0] if values else ""

    def first(self, name: str) -> str | None:
        """The first value of `name` in the query string, else in the form body."""
        for params in (self.args, self.form):
            if values := params.get(name):
                return values[0]
        return None


async def read_request(request: Request) -> FormRequest:
    """Read `request`'s query string and (URL-encoded form) body.

    Raises:
        BodyTooLargeError: the body is larger than `MAX_BODY_BYTES`.
    """
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLargeError(f"the request body exceeds {MAX_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form: Params = {}
    if content_type == FORM_TYPE:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    args = parse_qs(request.url.query, keep_blank_values=True)
    return FormRequest(request.method, str(request.url), request.headers, args, form, bytes(body))


class _FirstValues(dict[str, str]):
    """Query string first, then form: the first value of each name."""

    def __init__(self, request: FormRequest) -> None:
        super().__init__()
        for params in (request.form, request.args):  # the query string's values overwrite
            self.update({name: values[0] for name, values in params.items() if values})


class StarlettePayload(OAuth2Payload):
    def __init__(self, request: FormRequest) -> None:
        self._data = _FirstValues(request)
        datalist: defaultdict[str, list[str]] = defaultdict(list)
        for params in (request.args, request.form):
            for name, values in params.items():
                datalist[name].extend(values)
        self._datalist = datalist

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):
    def __init__(self, request: FormRequest) -> None:
        super().__init__(method=request.method, uri=request.url, headers=request.headers)
        self._args = {name: values[0] for name, values in request.args.items() if values}
        self._form = {name: values[0] for name, values in request.form.items() if values}
        self.payload = StarlettePayload(request)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class StarletteJsonPayload(JsonPayload):
    def __init__(self, request: FormRequest) -> None:
        self._body = request.body

    @property
    def data(self) -> Any:
        return json.loads(self._body) if self._body else {}


class StarletteJsonRequest(JsonRequest):
    def __init__(self, request: FormRequest) -> None:
        super().__init__(request.method, request.url, request.headers)
        self.payload = StarletteJsonPayload(request)


class StarletteAuthorizationServer(AuthorizationServer):
    """authlib's authorization server with the hooks a Starlette app needs."""

    def create_oauth2_request(self, request: FormRequest | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return StarletteOAuth2Request(request)

    def create_json_request(self, request: FormRequest) -> JsonRequest:
        return StarletteJsonRequest(request)

    def handle_response(
        self, status: int, body: object, headers: list[tuple[str, str]]
    ) -> Response:
        content = json.dumps(body) if isinstance(body, dict) else body
        if content is not None and not isinstance(content, str | bytes):
            content = str(content)
        return Response(content, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """authlib's signals (client authenticated, token revoked): nobody listens here."""
