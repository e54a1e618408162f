"""What a pending authorization shows and how its end is read: prompts, refusals, outcomes.

A pending flow is persisted in `WaitingForAuthorization` (`oauth.pending`), so whoever reads the
token can show its prompt again (`prompt_of`): a page reloaded, a second [Get Token] while one is
pending. `AddressRefusedError` is the refusal of an address that does not finish the setting's
browser flow; nothing changes then, and the flow (if any) goes on. `outcome` reads what became of
a flow that ended elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from tokenpost.errors import AuthorizationEndedError, UsageError
from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.text import Text
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    PendingFlow,
    TokenState,
    WaitingForAuthorization,
)

CANCELLED: Final = Text("the authorization was cancelled")
"""The reason recorded when an authorization is cancelled (Ctrl-C, SIGTERM, SIGHUP, `cancel`)."""


@dataclass(frozen=True, slots=True)
class DevicePrompt:
    """What the administrator must do for a device flow (RFC 8628 §3.3)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    message: str | None = None


@dataclass(frozen=True, slots=True)
class BrowserPrompt:
    """The address to open in a browser (RFC 8252). `redirect_uri` is where the browser is sent
    back (the registered URI, with the port listened on when one is); `can_paste` says whether
    the address the browser ended on may be handed in instead (`BrowserHooks.pasted`, or
    `Authorizer.finish_browser`)."""

    authorization_url: str
    expires_at: float
    redirect_uri: str
    can_paste: bool


Prompt = DevicePrompt | BrowserPrompt
PromptHook = Callable[[Prompt], Awaitable[None]]


def prompt_of(flow: PendingFlow) -> Prompt:
    """The prompt of a persisted flow: the same one its start showed. A browser flow read back
    from the store can always be finished with the address its browser ended on."""
    if isinstance(flow, DevicePending):
        return DevicePrompt(
            flow.user_code,
            flow.verification_uri,
            flow.verification_uri_complete,
            flow.expires_at,
            flow.message,
        )
    return BrowserPrompt(flow.authorization_url, flow.expires_at, flow.redirect_uri, can_paste=True)


class AddressRefusedError(UsageError):
    """An address that does not finish the setting's browser authorization: nothing changed,
    and the authorization, if one is pending, goes on (exit 2).

    `problem` says why, a stable word for programs (the JSON API): ``no_pending`` (no browser
    authorization waits: never started, already finished — a replayed address — cancelled or
    ended), ``other_setting`` (the address belongs to another setting's authorization),
    ``not_redirect_address``, ``state`` (another authorization's address), ``iss``,
    ``no_code``, ``malformed``, ``repeated`` or ``oversized``. The message never holds the
    address, its code or its state.
    """

    def __init__(self, message: str | Text, /, *, problem: str, **params: object) -> None:
        self.problem = problem
        super().__init__(message, **params)


def is_pending(state: TokenState, mine: PendingFlow) -> bool:
    """True while `mine` is still the flow the token waits for."""
    if not isinstance(state, WaitingForAuthorization):
        return False
    flow = state.flow
    if isinstance(flow, DevicePending) and isinstance(mine, DevicePending):
        return flow.device_code == mine.device_code
    if isinstance(flow, BrowserPending) and isinstance(mine, BrowserPending):
        return flow.state == mine.state
    return False


def outcome(state: TokenState, previous: Acquired | Invalid | None) -> Acquired:
    """The result of our flow, which finished elsewhere: another process polled it to the end
    (a grant, or a denial), a newer flow replaced it, or it was deleted or cancelled.
    `previous` is the token our flow kept in force when we last looked: finding it back means
    the flow ended without a grant.

    Raises:
        AuthorizationEndedError: the flow ended without a grant of its own.
    """
    restored = previous is not None and (
        state == previous
        or (
            isinstance(state, Acquired)
            and isinstance(previous, Acquired)
            and state.access_token == previous.access_token
        )
    )
    match state:
        case Acquired() if not restored:
            return state
        case Acquired() | Invalid() if restored:
            reason = Text("it ended elsewhere; the previous token is in force again")
        case NotAcquired(note=note) if note:
            reason = note
        case Invalid(reason=reason):
            pass
        case _:
            reason = Text("another authorization replaced it")
    raise AuthorizationEndedError("the authorization ended: {reason}", reason=reason)
