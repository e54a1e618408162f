"""The four token states of the device manual, each carrying only its own data.

    NotAcquired ──AuthorizationStarted──▶ WaitingForAuthorization ──Granted──▶ Acquired
         ▲                                   │ AuthorizationEnded                │ ▲ Refreshed,
         │                                   ▼ (back to `previous`)              │ │ RefreshFailed
         └──────── Deleted / BindingChanged ◀── any state          GrantRevoked ─▼ │ (transient)
                                                                             Invalid

While a flow is pending, its `previous` Acquired token keeps serving mail (`in_force`) and is
refreshed as if it were the state itself.

The ids and labels are a contract (DESIGN.md): CLI, JSON, web, logs and metrics use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.secret import Secret
from tokenpost.text import Text
from tokenpost.tokens.state_id import StateId

PendingFlow = DevicePending | BrowserPending


@dataclass(frozen=True, slots=True)
class NotAcquired:
    """No token. `note` says why the last attempt ended, if one did (e.g. "denied").

    Reasons and notes are `Text`: a state recorded by one process (in its language) is shown by
    another in the reader's language.
    """

    note: Text | None = None

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
    last_error: Text | None = None
    failing_since: float | None = None

    @property
    def id(self) -> StateId:
        return StateId.ACQUIRED


@dataclass(frozen=True, slots=True)
class Invalid:
    """A token was obtained but can no longer be used; `reason` tells the administrator why."""

    reason: Text
    since: float

    @property
    def id(self) -> StateId:
        return StateId.INVALID


@dataclass(frozen=True, slots=True)
class WaitingForAuthorization:
    """A flow is pending. `previous` is restored if it ends without a token (denied, expired,
    cancelled), so an aborted re-authorization never loses a token that still worked; while the
    flow is pending, an Acquired `previous` keeps serving mail and is refreshed as usual.

    `owner_host` and `owner_id` name the process that started the flow (`ports.FlowOwners`):
    a flow whose owner on this host is gone has ended, whatever the state still says. None for
    flows recorded before owners were (judged by their expiry alone).
    """

    flow: PendingFlow
    started_at: float
    previous: Acquired | Invalid | None = None
    owner_host: str | None = None
    owner_id: str | None = None

    @property
    def id(self) -> StateId:
        return StateId.WAITING_FOR_AUTHORIZATION


TokenState = NotAcquired | WaitingForAuthorization | Acquired | Invalid


def in_force(state: TokenState) -> Acquired | None:
    """The token that serves mail in `state`: an Acquired state itself, or the Acquired token a
    pending re-authorization keeps in force; None when the setting has no usable token."""
    if isinstance(state, Acquired):
        return state
    if isinstance(state, WaitingForAuthorization) and isinstance(state.previous, Acquired):
        return state.previous
    return None
