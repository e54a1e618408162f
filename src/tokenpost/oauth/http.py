"""Neutral HTTP values the cores build and read; the httpx adapter turns them into real exchanges.

Form values may be `Secret`s: the adapter reveals them only when encoding the body, so a request
can be logged or shown in a test failure without leaking a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from tokenpost.secret import Secret

# A token endpoint answers with a few KiB at most; anything far larger is hostile or broken.
MAX_RESPONSE_BYTES: Final = 64 * 1024

FormValue = str | Secret


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    form: tuple[tuple[str, FormValue], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # HTTP basic client authentication (RFC 6749 §2.3.1): (client_id, secret)
    basic_auth: tuple[str, Secret] | None = None

    def form_value(self, name: str) -> FormValue | None:
        """The first value of form field `name` (for tests and adapters)."""
        return next((v for k, v in self.form if k == name), None)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = field(default=())

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)
