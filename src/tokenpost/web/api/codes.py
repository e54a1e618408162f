"""The stable error codes of the JSON API: programs branch on these, never on the message.

Each code has one HTTP status. The OpenAPI document lists them (`models.ErrorDetail.code`) and
the codes each status may carry (`responses`). A code is never renamed or given another status;
new ones may be added.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ErrorCode(StrEnum):
    VALIDATION_FAILED = "validation_failed"  # the request or the settings it gives break a rule
    ADDRESS_REFUSED = "address_refused"  # the address does not finish this browser authorization
    UNAUTHORIZED = "unauthorized"  # no valid credential: an API token or a signed-in session
    FORBIDDEN = "forbidden"  # a viewer changing something; a change without the CSRF token
    NOT_FOUND = "not_found"  # no such setting, provider or route
    METHOD_NOT_ALLOWED = "method_not_allowed"  # the route takes other methods (see Allow)
    CONFLICT = "conflict"  # impossible now: the setting uses no OAuth 2.0, the provider is in use…
    AUTHORIZATION_ENDED = "authorization_ended"  # denied, expired or cancelled: start again
    DAMAGED_RECORD = "damaged_record"  # the stored record cannot be read: give it again
    BUSY = "busy"  # another process holds the token (refreshing, authorizing): try again
    PROVIDER_ERROR = "provider_error"  # the provider refused or could not be reached
    STORE_UNAVAILABLE = "store_unavailable"  # the local store cannot be used
    INTERNAL_ERROR = "internal_error"  # a fault of tokenpost itself (logged)


STATUS: Final[dict[ErrorCode, int]] = {
    ErrorCode.VALIDATION_FAILED: 422,
    ErrorCode.ADDRESS_REFUSED: 422,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.AUTHORIZATION_ENDED: 409,
    ErrorCode.DAMAGED_RECORD: 409,
    ErrorCode.BUSY: 409,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}


def codes_of(status: int) -> list[ErrorCode]:
    """The codes an error answer with `status` may carry."""
    return [code for code, s in STATUS.items() if s == status]
