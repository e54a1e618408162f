"""The token state machine: events, the one table of allowed transitions, and `apply`.

Theory of operation. A token's state changes only through `apply(state, event)`, a pure function.
`TRANSITIONS` lists every allowed (state, event) pair with the states it can lead to; `apply`
refuses any other pair with `IllegalTransition`, the tests walk every pair of the table, and the
docs' diagram is drawn from it (`make_state_diagram`), so the table is the specification.

Invariants:
- A pending flow never loses a working token: `WaitingForAuthorization.previous` holds the
  Acquired or Invalid state being replaced, and `AuthorizationEnded` restores it. A new flow
  replacing a pending one keeps the original `previous`. While the flow is pending, an Acquired
  `previous` is refreshed like an Acquired state: `Refreshed`, `RefreshFailed` and
  `GrantRevoked` in Waiting change only `previous` (the flow goes on).
- A refresh never loses the refresh token: when the token response carries none, the old one is
  kept (RFC 6749 §6: the server MAY issue a new one; only then is the old one discarded).
- Transient refresh failures never leave Acquired; only `GrantRevoked` makes a token Invalid.
  `Acquired.failing_since` is set by the first `RefreshFailed` of a run, kept by the ones that
  follow, and cleared by `Refreshed` or `Granted` (both build a fresh Acquired).
- `Deleted` and `BindingChanged` are allowed in every state: an administrator can always start
  over, and a token must never reach a server or account it was not obtained for.

Events carry the time they happened (`now`, epoch seconds) when the new state records it.
Reasons are `Text`, so a state recorded in one language is shown in another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final, TypeVar, assert_never

from tokenpost.errors import OperationError
from tokenpost.oauth.grant import TokenGrant
from tokenpost.text import Text
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    PendingFlow,
    TokenState,
    WaitingForAuthorization,
)
from tokenpost.tokens.state_id import LABELS, StateId

SETTINGS_CHANGED: Final = Text("settings changed")
"""The note of the NotAcquired state `BindingChanged` leads to."""


@dataclass(frozen=True, slots=True)
class AuthorizationStarted:
    """A device or browser flow began; it replaces any flow already pending. `owner_host` and
    `owner_id` name the process that waits for it (`WaitingForAuthorization`)."""

    flow: PendingFlow
    now: float
    owner_host: str | None = None
    owner_id: str | None = None


@dataclass(frozen=True, slots=True)
class PollScheduled:
    """The pending flow's bookkeeping changed (next poll time, interval after ``slow_down``)."""

    flow: PendingFlow


@dataclass(frozen=True, slots=True)
class Granted:
    """The token endpoint issued a token: the pending flow succeeded, or an app-only token
    (client credentials, which never waits) was requested."""

    grant: TokenGrant
    now: float


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A refresh succeeded (RFC 6749 §6)."""

    grant: TokenGrant
    now: float


@dataclass(frozen=True, slots=True)
class RefreshFailed:
    """A refresh failed transiently (network, 408/429/5xx, ``temporarily_unavailable``).

    `reason` is for the administrator and never holds a secret; `retry_at` is when to try again;
    `now` is when it failed (the first failure of a run starts `Acquired.failing_since`).
    """

    reason: Text
    retry_at: float
    now: float


@dataclass(frozen=True, slots=True)
class GrantRevoked:
    """The grant is gone (``invalid_grant``, consent or interaction required)."""

    reason: Text
    now: float


@dataclass(frozen=True, slots=True)
class AuthorizationEnded:
    """The pending flow ended without a token: denied, expired, cancelled, or its owner is gone."""

    reason: Text


@dataclass(frozen=True, slots=True)
class Deleted:
    """The administrator deleted the token."""


@dataclass(frozen=True, slots=True)
class BindingChanged:
    """The setting's provider, account, scope, endpoints or server changed (`tokens.binding`)."""


TokenEvent = (
    AuthorizationStarted
    | PollScheduled
    | Granted
    | Refreshed
    | RefreshFailed
    | GrantRevoked
    | AuthorizationEnded
    | Deleted
    | BindingChanged
)

EVENT_TYPES: Final[tuple[type[TokenEvent], ...]] = (
    AuthorizationStarted,
    PollScheduled,
    Granted,
    Refreshed,
    RefreshFailed,
    GrantRevoked,
    AuthorizationEnded,
    Deleted,
    BindingChanged,
)

_NOT_ACQUIRED = StateId.NOT_ACQUIRED
_WAITING = StateId.WAITING_FOR_AUTHORIZATION
_ACQUIRED = StateId.ACQUIRED
_INVALID = StateId.INVALID
_ANY: Final = tuple(StateId)

# (state, event) → the states it can lead to. The only statement of what is allowed.
TRANSITIONS: Final[Mapping[tuple[StateId, type[TokenEvent]], frozenset[StateId]]] = (
    MappingProxyType(
        {
            (_NOT_ACQUIRED, AuthorizationStarted): frozenset({_WAITING}),
            (_ACQUIRED, AuthorizationStarted): frozenset({_WAITING}),
            (_INVALID, AuthorizationStarted): frozenset({_WAITING}),
            (_WAITING, AuthorizationStarted): frozenset({_WAITING}),
            (_WAITING, PollScheduled): frozenset({_WAITING}),
            (_WAITING, Granted): frozenset({_ACQUIRED}),
            # App-only tokens are granted without waiting.
            (_NOT_ACQUIRED, Granted): frozenset({_ACQUIRED}),
            (_ACQUIRED, Granted): frozenset({_ACQUIRED}),
            (_INVALID, Granted): frozenset({_ACQUIRED}),
            (_ACQUIRED, Refreshed): frozenset({_ACQUIRED}),
            (_ACQUIRED, RefreshFailed): frozenset({_ACQUIRED}),
            (_ACQUIRED, GrantRevoked): frozenset({_INVALID}),
            # The token a pending re-authorization keeps in force: only `previous` changes.
            (_WAITING, Refreshed): frozenset({_WAITING}),
            (_WAITING, RefreshFailed): frozenset({_WAITING}),
            (_WAITING, GrantRevoked): frozenset({_WAITING}),
            (_WAITING, AuthorizationEnded): frozenset({_NOT_ACQUIRED, _ACQUIRED, _INVALID}),
            **{(state, Deleted): frozenset({_NOT_ACQUIRED}) for state in _ANY},
            **{(state, BindingChanged): frozenset({_NOT_ACQUIRED}) for state in _ANY},
        }
    )
)


class IllegalTransition(OperationError):
    """An event arrived in a state that does not allow it (not in `TRANSITIONS`).

    An OperationError (exit 1): it means the request was well formed but the token had moved on,
    e.g. a refresh finishing after the token was deleted, or a poll for a flow that already ended.
    """

    def __init__(self, state: StateId, event: type[TokenEvent]) -> None:
        self.state = state
        self.event = event.__name__
        super().__init__(
            "{event} is not allowed when the token is {state}", event=self.event, state=state.value
        )


# One `case` and one return per event mirrors the table; splitting it would hide the dispatch.
def apply(state: TokenState, event: TokenEvent) -> TokenState:  # noqa: PLR0911
    """The state after `event`.

    Raises:
        IllegalTransition: `TRANSITIONS` does not allow `event` in `state`.
    """
    if (state.id, type(event)) not in TRANSITIONS:
        raise IllegalTransition(state.id, type(event))
    match event:
        case AuthorizationStarted(flow=flow, now=now, owner_host=host, owner_id=owner):
            return WaitingForAuthorization(
                flow,
                started_at=now,
                previous=_restorable(state),
                owner_host=host,
                owner_id=owner,
            )
        case PollScheduled(flow=flow):
            return replace(_expect(state, WaitingForAuthorization, event), flow=flow)
        case Granted(grant=grant, now=now):
            return _acquired(grant, now)
        case Refreshed(grant=grant, now=now):
            return _in_force(state, event, lambda current: _refreshed(current, grant, now))
        case RefreshFailed(reason=reason, retry_at=retry_at, now=now):
            return _in_force(
                state,
                event,
                lambda current: replace(
                    current,
                    failures=current.failures + 1,
                    retry_at=retry_at,
                    last_error=reason,
                    failing_since=now if current.failing_since is None else current.failing_since,
                ),
            )
        case GrantRevoked(reason=reason, now=now):
            return _in_force(state, event, lambda current: Invalid(reason, since=now))
        case AuthorizationEnded(reason=reason):
            previous = _expect(state, WaitingForAuthorization, event).previous
            return previous if previous is not None else NotAcquired(note=reason)
        case Deleted():
            return NotAcquired()
        case BindingChanged():
            return NotAcquired(note=SETTINGS_CHANGED)
        case _:
            assert_never(event)


_S = TypeVar("_S", NotAcquired, WaitingForAuthorization, Acquired, Invalid)


def _expect(state: TokenState, kind: type[_S], event: TokenEvent) -> _S:
    # Narrows the type for the checker; the table has already admitted only this kind of state.
    if not isinstance(state, kind):
        raise IllegalTransition(state.id, type(event))
    return state


def _in_force(
    state: TokenState, event: TokenEvent, change: Callable[[Acquired], Acquired | Invalid]
) -> TokenState:
    """Apply `change` to the token in force: the Acquired state itself, or the Acquired
    `previous` of a pending flow (which goes on). A Waiting state without an Acquired previous
    has no token to refresh."""
    if isinstance(state, Acquired):
        return change(state)
    waiting = _expect(state, WaitingForAuthorization, event)
    if not isinstance(waiting.previous, Acquired):
        raise IllegalTransition(state.id, type(event))
    return replace(waiting, previous=change(waiting.previous))


def _restorable(state: TokenState) -> Acquired | Invalid | None:
    """What an aborted flow falls back to: the token it was started over, if any."""
    match state:
        case Acquired() | Invalid():
            return state
        case WaitingForAuthorization(previous=previous):
            return previous
        case NotAcquired():
            return None
        case _:
            assert_never(state)


def _acquired(grant: TokenGrant, now: float) -> Acquired:
    return Acquired(
        access_token=grant.access_token,
        expires_at=grant.expires_at,
        obtained_at=now,
        refresh_token=grant.refresh_token,
        scope=grant.scope,
    )


def _refreshed(current: Acquired, grant: TokenGrant, now: float) -> Acquired:
    # RFC 6749 §5.1: a response may omit `scope` when it equals the requested one, and §6: keep
    # the refresh token unless a new one is issued. Failure bookkeeping starts over.
    return Acquired(
        access_token=grant.access_token,
        expires_at=grant.expires_at,
        obtained_at=now,
        refresh_token=grant.refresh_token or current.refresh_token,
        scope=grant.scope or current.scope,
    )


def make_state_diagram() -> str:
    """A Mermaid ``stateDiagram-v2`` of `TRANSITIONS`, for the docs (one edge per event)."""
    lines = ["stateDiagram-v2"]
    lines += [f'    state "{LABELS[state]}" as {state.value}' for state in StateId]
    lines.append(f"    [*] --> {_NOT_ACQUIRED.value}")
    for (source, event), targets in TRANSITIONS.items():
        for target in sorted(targets):
            lines.append(f"    {source.value} --> {target.value} : {event.__name__}")
    return "\n".join(lines) + "\n"
