"""In-memory state of the sandbox authorization server, behind one lock.

Theory of operation: every decision that reads and then writes state (poll a device code, redeem
a code, exchange a refresh token) is one method here, taken under `_lock`; the authlib grants only
call these methods. uvicorn serves the requests on one event loop and no method awaits, so each
decision is atomic there; the lock keeps it so for any thread as well. That makes the races tests
provoke (two refreshes with one token, two polls after approval) resolve the way a strict server
resolves them: the first wins, and under rotation the second is a replay (RFC 9700 §4.14) that
revokes the whole grant family.

Time is a parameter (`now`, epoch seconds); randomness comes from `secrets`.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from tokenpost.errors import NotFoundError
from tokenpost.secret import Secret
from tokenpost_sandbox.knobs import Knobs
from tokenpost_sandbox.models import (
    ACCESS_TOKEN_PREFIX,
    DEVICE_CODE_GRANT_TYPE,
    REFRESH_TOKEN_PREFIX,
    AccessRecord,
    Client,
    CodeRecord,
    DeviceDecision,
    DeviceRecord,
    Endpoint,
    Fault,
    FaultKind,
    GrantKind,
    GrantRecord,
    PageDecision,
    PollOutcome,
    RefreshRecord,
    RevokedEntry,
    RevokeReason,
    Stats,
    TokenKind,
    TokenLookup,
    User,
)

PUBLIC_CLIENT_ID: Final = "tokenpost-test"
APP_CLIENT_ID: Final = "tokenpost-app"
MAILSERVER_CLIENT_ID: Final = "mailserver"
# RFC 8628 §3.5: each slow_down adds 5 seconds to the interval, for this and all later polls.
SLOW_DOWN_STEP: Final = 5


def make_clients(app_secret: Secret, mailserver_secret: Secret) -> dict[str, Client]:
    """The three fixed clients: public device/browser app, confidential app, resource server."""
    return {
        PUBLIC_CLIENT_ID: Client(
            PUBLIC_CLIENT_ID,
            None,
            auth_methods=frozenset({"none"}),
            grant_types=frozenset({DEVICE_CODE_GRANT_TYPE, "authorization_code", "refresh_token"}),
        ),
        APP_CLIENT_ID: Client(
            APP_CLIENT_ID,
            app_secret,
            auth_methods=frozenset({"client_secret_basic", "client_secret_post"}),
            grant_types=frozenset({"client_credentials"}),
        ),
        MAILSERVER_CLIENT_ID: Client(
            MAILSERVER_CLIENT_ID,
            mailserver_secret,
            auth_methods=frozenset({"client_secret_basic"}),
            grant_types=frozenset(),
        ),
    }


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str | None


def new_tokens(*, with_refresh: bool) -> IssuedTokens:
    """Fresh opaque tokens with the prefixes tests grep for in logs and database files."""
    refresh = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32) if with_refresh else None
    return IssuedTokens(ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32), refresh)


@dataclass(slots=True)
class _State:
    """Everything `reset` clears. Mutated only under `SandboxStore._lock`."""

    knobs: Knobs = field(default_factory=Knobs)
    devices: dict[str, DeviceRecord] = field(default_factory=dict)
    user_codes: dict[str, str] = field(default_factory=dict)  # user_code -> device_code
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    grants: dict[str, GrantRecord] = field(default_factory=dict)
    access: dict[str, AccessRecord] = field(default_factory=dict)
    refresh: dict[str, RefreshRecord] = field(default_factory=dict)
    faults: dict[Endpoint, Fault] = field(default_factory=dict)
    requests: Counter[Endpoint] = field(default_factory=Counter)
    grants_by_type: Counter[GrantKind] = field(default_factory=Counter)
    refresh_replays: int = 0
    revoked: list[RevokedEntry] = field(default_factory=list)


class SandboxStore:
    """All mutable sandbox state; thread-safe."""

    def __init__(self, clients: dict[str, Client]) -> None:
        self._clients = dict(clients)
        self._lock = threading.Lock()
        self._state = _State()

    # -- control ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._state = _State()

    @property
    def knobs(self) -> Knobs:
        with self._lock:
            return self._state.knobs

    def update_knobs(self, changes: Mapping[str, object]) -> Knobs:
        """Apply `changes` atomically and return all knobs; raises as `Knobs.updated` does."""
        with self._lock:
            self._state.knobs = self._state.knobs.updated(changes)
            return self._state.knobs

    def set_fault(self, endpoint: Endpoint, fault: Fault) -> None:
        with self._lock:
            self._state.faults[endpoint] = fault

    def take_fault(self, endpoint: Endpoint) -> FaultKind | None:
        """Count one request to `endpoint` and consume one injected fault, if any is armed."""
        with self._lock:
            self._state.requests[endpoint] += 1
            fault = self._state.faults.get(endpoint)
            if fault is None or fault.remaining <= 0:
                return None
            self._state.faults[endpoint] = replace(fault, remaining=fault.remaining - 1)
            return fault.kind

    def decide_device(self, user_code: str, decision: DeviceDecision, user: User | None) -> None:
        """Approve or deny a pending device authorization, as the user at /activate would.

        Raises:
            NotFoundError: no device authorization has this user code.
        """
        with self._lock:
            record = self._device_by_user_code(user_code)
            self._state.devices[record.device_code] = replace(record, decision=decision, user=user)

    def decide_device_once(
        self, user_code: str, decision: DeviceDecision, user: User | None, now: float
    ) -> PageDecision:
        """A person's decision on the verification page: only for a code still pending."""
        with self._lock:
            device_code = self._state.user_codes.get(user_code.upper())
            record = None if device_code is None else self._state.devices[device_code]
            if record is None:
                return PageDecision.UNKNOWN
            if record.redeemed or record.decision is not DeviceDecision.PENDING:
                return PageDecision.ALREADY_DECIDED
            if record.expires_at <= now:
                return PageDecision.EXPIRED
            self._state.devices[record.device_code] = replace(record, decision=decision, user=user)
            return PageDecision.DECIDED

    def expire_device(self, user_code: str, now: float) -> None:
        """Make a device code expire now (its next poll answers expired_token)."""
        with self._lock:
            record = self._device_by_user_code(user_code)
            self._state.devices[record.device_code] = replace(record, expires_at=now)

    def revoke_user(self, account: str) -> int:
        """Revoke every live grant of `account`; returns how many went."""
        with self._lock:
            live = [
                g
                for g in self._state.grants.values()
                if g.user is not None and g.user.account == account and g.revoked is None
            ]
            for grant in live:
                self._revoke_grant(grant.grant_id, RevokeReason.REVOKE_USER, None)
            return len(live)

    def stats(self, now: float) -> Stats:
        with self._lock:
            state = self._state
            return Stats(
                requests={e: state.requests[e] for e in Endpoint},
                grants_by_type={k: state.grants_by_type[k] for k in GrantKind},
                refresh_replays=state.refresh_replays,
                revoked=tuple(state.revoked),
                active_access_tokens=sum(
                    1 for a in state.access.values() if self._access_active(a, now)
                ),
            )

    # -- clients ---------------------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        client = self._clients.get(client_id)
        if client is None:
            return None
        # Registered redirect URIs are a knob, so tests can register the paths they use.
        return replace(client, redirect_uris=self.knobs.redirect_uris)

    # -- device grant (RFC 8628) -----------------------------------------------------------

    def add_device(self, record: DeviceRecord) -> None:
        with self._lock:
            self._state.devices[record.device_code] = record
            self._state.user_codes[record.user_code] = record.device_code

    def device(self, device_code: str) -> DeviceRecord | None:
        with self._lock:
            return self._state.devices.get(device_code)

    def poll_device(self, device_code: str, now: float) -> tuple[PollOutcome, User | None]:
        """Decide one token-endpoint poll; an approved code is redeemed by the poll that sees it."""
        with self._lock:
            record = self._state.devices.get(device_code)
            if record is None:
                return PollOutcome.UNKNOWN, None
            outcome = _poll_outcome(record, now)
            if outcome is PollOutcome.APPROVED:
                updated = replace(record, last_poll=now, redeemed=True)
            elif outcome is PollOutcome.SLOW_DOWN:
                updated = replace(record, last_poll=now, interval=record.interval + SLOW_DOWN_STEP)
            else:
                updated = replace(record, last_poll=now)
            self._state.devices[device_code] = updated
            return outcome, record.user

    # -- authorization code (RFC 6749 §4.1, RFC 7636) --------------------------------------

    def add_code(self, record: CodeRecord) -> None:
        with self._lock:
            self._state.codes[record.code] = record

    def take_code(self, code: str, client_id: str, now: float) -> CodeRecord | None:
        """Redeem a code once: it is removed whether or not the rest of the request succeeds."""
        with self._lock:
            record = self._state.codes.pop(code, None)
        if record is None or record.client_id != client_id or record.expires_at <= now:
            return None
        return record

    # -- refresh (RFC 6749 §6, RFC 9700 §4.14) ---------------------------------------------

    def use_refresh_token(self, token: str, client_id: str) -> RefreshRecord | None:
        """The refresh token's record if `client_id` may exchange it now, else None.

        Under rotation the token is consumed here, atomically, so a second use is a replay:
        the whole grant family is revoked and the replay counted (RFC 9700 §4.14.2).
        """
        with self._lock:
            record = self._state.refresh.get(token)
            if record is None or record.client_id != client_id:
                return None
            if self._state.grants[record.grant_id].revoked is not None:
                return None
            if record.rotated:
                self._state.refresh_replays += 1
                self._revoke_grant(record.grant_id, RevokeReason.REPLAY, TokenKind.REFRESH)
                return None
            if self._state.knobs.rotate_refresh_tokens:
                self._state.refresh[token] = replace(record, rotated=True)
            return record

    # -- issuing ---------------------------------------------------------------------------

    def record_issued(
        self,
        issued: IssuedTokens,
        *,
        kind: GrantKind,
        client_id: str,
        user: User | None,
        scope: str,
        parent: RefreshRecord | None,
        now: float,
    ) -> None:
        """Remember minted tokens: a new grant family, or (with `parent`) more of the parent's."""
        with self._lock:
            if parent is None:
                grant_id = "g_" + secrets.token_hex(8)
                self._state.grants[grant_id] = GrantRecord(grant_id, kind, client_id, user, scope)
            else:
                grant_id = parent.grant_id
            expires_at = now + self._state.knobs.access_token_lifetime
            self._state.access[issued.access_token] = AccessRecord(
                issued.access_token, grant_id, scope, expires_at
            )
            if issued.refresh_token is not None:
                # RFC 6749 §6: a new refresh token keeps the scope of the one it replaces.
                refresh_scope = scope if parent is None else parent.scope
                self._state.refresh[issued.refresh_token] = RefreshRecord(
                    issued.refresh_token, grant_id, client_id, refresh_scope, user
                )
            self._state.grants_by_type[kind] += 1

    # -- revocation and introspection (RFC 7009, RFC 7662) ---------------------------------

    def lookup(self, token: str, now: float) -> TokenLookup | None:
        with self._lock:
            if (access := self._state.access.get(token)) is not None:
                grant = self._state.grants[access.grant_id]
                return TokenLookup(
                    kind=TokenKind.ACCESS,
                    token=token,
                    grant_id=grant.grant_id,
                    client_id=grant.client_id,
                    user=grant.user,
                    scope=access.scope,
                    expires_at=access.expires_at,
                    expired=access.expires_at <= now,
                    revoked=access.revoked or grant.revoked is not None,
                )
            if (refresh := self._state.refresh.get(token)) is not None:
                grant = self._state.grants[refresh.grant_id]
                return TokenLookup(
                    kind=TokenKind.REFRESH,
                    token=token,
                    grant_id=grant.grant_id,
                    client_id=grant.client_id,
                    user=grant.user,
                    scope=refresh.scope,
                    expires_at=None,
                    expired=False,
                    revoked=refresh.rotated or grant.revoked is not None,
                )
            return None

    def revoke(self, found: TokenLookup) -> None:
        """RFC 7009 §2.1: revoking a refresh token revokes its grant; an access token, itself."""
        with self._lock:
            if found.kind is TokenKind.REFRESH:
                self._revoke_grant(found.grant_id, RevokeReason.REVOCATION, TokenKind.REFRESH)
                return
            access = self._state.access[found.token]
            if access.revoked:
                return
            self._state.access[found.token] = replace(access, revoked=True)
            grant = self._state.grants[found.grant_id]
            self._state.revoked.append(
                RevokedEntry(
                    grant.grant_id,
                    grant.client_id,
                    None if grant.user is None else grant.user.account,
                    RevokeReason.REVOCATION,
                    TokenKind.ACCESS,
                )
            )

    # -- helpers (caller holds the lock) ---------------------------------------------------

    def _device_by_user_code(self, user_code: str) -> DeviceRecord:
        device_code = self._state.user_codes.get(user_code.upper())
        if device_code is None:
            raise NotFoundError("user_code: no device authorization has this user code")
        return self._state.devices[device_code]

    def _revoke_grant(self, grant_id: str, reason: RevokeReason, kind: TokenKind | None) -> None:
        grant = self._state.grants[grant_id]
        if grant.revoked is not None:
            return
        self._state.grants[grant_id] = replace(grant, revoked=reason)
        account = None if grant.user is None else grant.user.account
        self._state.revoked.append(RevokedEntry(grant_id, grant.client_id, account, reason, kind))

    def _access_active(self, access: AccessRecord, now: float) -> bool:
        grant = self._state.grants[access.grant_id]
        return not access.revoked and grant.revoked is None and access.expires_at > now


def _poll_outcome(record: DeviceRecord, now: float) -> PollOutcome:
    """RFC 8628 §3.5, in the order a strict server checks it."""
    if record.redeemed:
        return PollOutcome.REDEEMED
    if record.expires_at <= now:
        return PollOutcome.EXPIRED
    if record.decision is DeviceDecision.DENIED:
        return PollOutcome.DENIED
    if record.decision is DeviceDecision.APPROVED:
        return PollOutcome.APPROVED
    if record.last_poll is not None and now - record.last_poll < record.interval:
        return PollOutcome.SLOW_DOWN
    return PollOutcome.PENDING
