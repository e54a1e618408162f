"""``GET /openapi.json``: the OpenAPI document of the JSON API (FastAPI's, from the API's routes
only: the pages are not in it), with its two ways of signing in. It holds nothing of this
installation, so it is served without credentials, like the static files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

import tokenpost
from tokenpost.web.sessions import COOKIE

DOCUMENT_PATH: Final = "/openapi.json"
DESCRIPTION: Final = """The JSON API of tokenpost's web page (`tokenpost serve`).

Credentials: an API token made by `tokenpost admin token create NAME [--viewer]`, sent as
`Authorization: Bearer tpat_…`; or the web page's session cookie, with the `X-CSRF-Token` header
on every change. A viewer reads; an administrator also changes.

A setting is named as on the command line: `smtp` or `pop:NAME` (the colon may be sent as `%3A`).

Every error is `{"error": {"code", "message", "field", "fix", "reason", "problems"}}`; the codes
are stable, the message is in the language of Accept-Language (en, de).
"""


def api_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of the API's `routes`."""
    document = get_openapi(
        title="tokenpost", version=tokenpost.__version__, description=DESCRIPTION, routes=routes
    )
    document.setdefault("components", {})["securitySchemes"] = {
        "apiToken": {"type": "http", "scheme": "bearer", "description": "tpat_…"},
        "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
    }
    document["security"] = [{"apiToken": []}, {"session": []}]
    return document
