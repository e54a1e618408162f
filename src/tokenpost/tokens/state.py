"""The four token states of the device manual, each carrying only its own data.

    NotAcquired ──AuthorizationStarted──▶ WaitingForAuthorization ──Granted──▶ Acquired
         ▲                                   │ AuthorizationEnded                │ ▲ Refreshed,
         │                                   ▼ (back to `previous`)              │ │ RefreshFailed
         └──────── Deleted / BindingChanged ◀── any state          GrantRevoked ─▼ │ (transient)
                                                                             Invalid

The ids and labels are a contract (DESIGN.md): CLI, JSON, web, logs and metrics use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.secret import Secret


class StateId(StrEnum):
    NOT_ACQUIRED = "not_acquired"
    WAITING_FOR_AUTHORIZATION = "waiting_for_authorization"
    ACQUIRED = "acquired"
    INVALID = "invalid"


PendingFlow = DevicePending | BrowserPending


@dataclass(frozen=True, slots=True)
class NotAcquired:
    """No token. `note` says why the last attempt ended, if one did (e.g. "denied")."""

    note: str | None = None

    @property
    def id(self) -> StateId:
        return StateId.NOT_ACQUIRED


@dataclass(frozen=True, slots=True)
class Acquired:
    """A usable token. Refresh bookkeeping lives here, never in extra visible states.

    `failures` counts consecutive transient refresh failures; `retry_at` is when to try again;
    `last_error` is the last transient failure, for the administrator; `failing_since` is when
    the current run of failures began (None while refreshing works), for alerts that fire once
    refreshing has failed for a while.
    """

    access_token: Secret
    expires_at: float
    obtained_at: float
    refresh_token: Secret | None = None
    scope: tuple[str, ...] = ()
    failures: int = 0
    retry_at: float | None = None
    last_error: str | None = None
    failing_since: float | None = None

    @property
    def id(self) -> StateId:
        return StateId.ACQUIRED


@dataclass(frozen=True, slots=True)
class Invalid:
    """A token was obtained but can no longer be used; `reason` tells the administrator why."""

    reason: str
    since: float

    @property
    def id(self) -> StateId:
        return StateId.INVALID


@dataclass(frozen=True, slots=True)
class WaitingForAuthorization:
    """A flow is pending. `previous` is restored if it ends without a token (denied, expired,
    cancelled), so an aborted re-authorization never loses a token that still worked."""

    flow: PendingFlow
    started_at: float
    previous: Acquired | Invalid | None = None

    @property
    def id(self) -> StateId:
        return StateId.WAITING_FOR_AUTHORIZATION


TokenState = NotAcquired | WaitingForAuthorization | Acquired | Invalid
