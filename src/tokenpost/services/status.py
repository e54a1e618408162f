"""What `token status` shows: every setting's token state, read without network or writes.

A pending re-authorization shows as Waiting for authorization (the device manual's label), with
the token it keeps in force beside it (`previous_state`, `previous_expires_at`): mail still works
until that token expires. A flow that has ended (its code expired, or the `token get` waiting for
it is gone) reads as ended, so the state shown is the one now in force.

A damaged setting (the store cannot read or authenticate it) is listed in its place as Invalid
with the store's reason and fix, and so is a setting whose provider record is damaged: one
damaged record never hides the others (issue 8, item 3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenpost.errors import DamagedRecordError, TokenpostError
from tokenpost.oauth.pending import DevicePending
from tokenpost.ports import UNTRACKED_OWNERS, DamagedRecord, FlowOwners, Store
from tokenpost.services.targets import all_settings, load_current, load_setting, target_of
from tokenpost.settings.model import POP_PREFIX, SMTP_ID, AuthMethod, MailSetting
from tokenpost.text import Text, as_text
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    StateId,
    TokenState,
    WaitingForAuthorization,
)


@dataclass(frozen=True, slots=True)
class SettingStatus:
    """One row of `token status`. `state` is None for settings that do not use OAuth 2.0;
    `auth` is None for a damaged setting (its stored method cannot be trusted).

    While a re-authorization is pending, `previous_state` is the state of the token it replaces
    (Acquired: still serving mail until `previous_expires_at`; Invalid, with `previous_reason`).
    """

    setting_id: str
    auth: AuthMethod | None
    account: str | None
    provider: str | None
    state: StateId | None
    expires_at: float | None = None
    reason: Text | None = None
    user_code: str | None = None
    verification_uri: str | None = None
    failures: int = 0
    previous_state: StateId | None = None
    previous_expires_at: float | None = None
    previous_reason: Text | None = None
    # When the token in force was obtained or last refreshed (Acquired, or the previous token of
    # a pending re-authorization).
    obtained_at: float | None = None

    @property
    def in_force(self) -> bool:
        """True when the setting has a token that serves mail: Acquired, or the Acquired
        previous token of a pending re-authorization."""
        return StateId.ACQUIRED in (self.state, self.previous_state)


async def status(
    store: Store,
    *,
    now: float | None = None,
    owners: FlowOwners = UNTRACKED_OWNERS,
    setting_id: str | None = None,
) -> list[SettingStatus]:
    """Every setting, SMTP first, then POP settings by name, damaged ones as Invalid; only
    `setting_id` when given.

    Given `now`, a pending flow that has ended reads as ended (`targets.current_record`).

    Raises:
        NotFoundError: `setting_id` names no setting.
    """
    if setting_id is not None:
        try:
            settings = [await load_setting(store, setting_id)]
        except DamagedRecordError:
            return [_damaged(d) for d in await store.damaged_records() if d.record_id == setting_id]
        return [await _row(store, s, now, owners) for s in settings]
    rows = [await _row(store, s, now, owners) for s in await all_settings(store)]
    rows += [
        _damaged(d)
        for d in await store.damaged_records()
        if d.record_id == SMTP_ID or d.record_id.startswith(POP_PREFIX)
    ]
    return sorted(rows, key=lambda r: (r.setting_id != SMTP_ID, r.setting_id))


def _damaged(record: DamagedRecord) -> SettingStatus:
    """A setting the store cannot read: nothing of it is shown but the store's reason."""
    return SettingStatus(
        record.record_id,
        auth=None,
        account=None,
        provider=None,
        state=StateId.INVALID,
        reason=record.reason,
    )


async def _row(
    store: Store, setting: MailSetting, now: float | None, owners: FlowOwners
) -> SettingStatus:
    row = SettingStatus(
        setting.setting_id, setting.auth, setting.account, setting.provider, state=None
    )
    if setting.auth is not AuthMethod.OAUTH2:
        return row
    try:
        target = await target_of(store, setting)
    except DamagedRecordError as error:  # the provider's record
        return replace(row, state=StateId.INVALID, reason=as_text(error))
    except TokenpostError as error:
        return replace(row, state=StateId.NOT_ACQUIRED, reason=as_text(error))
    state = (await load_current(store, target, now=now, owners=owners)).state
    return _with_details(replace(row, state=state.id), state)


def _with_details(row: SettingStatus, state: TokenState) -> SettingStatus:
    match state:
        case Acquired():
            return replace(
                row,
                expires_at=state.expires_at,
                reason=state.last_error,
                failures=state.failures,
                obtained_at=state.obtained_at,
            )
        case Invalid():
            return replace(row, reason=state.reason)
        case NotAcquired():
            return replace(row, reason=state.note)
        case WaitingForAuthorization():
            return _with_previous(_with_flow(row, state), state.previous)


def _with_flow(row: SettingStatus, state: WaitingForAuthorization) -> SettingStatus:
    flow = state.flow
    if isinstance(flow, DevicePending):
        return replace(
            row,
            expires_at=flow.expires_at,
            user_code=flow.user_code,
            verification_uri=flow.verification_uri,
        )
    return replace(row, expires_at=flow.expires_at)


def _with_previous(row: SettingStatus, previous: Acquired | Invalid | None) -> SettingStatus:
    match previous:
        case Acquired():
            return replace(
                row,
                previous_state=previous.id,
                previous_expires_at=previous.expires_at,
                previous_reason=previous.last_error,
                failures=previous.failures,
                obtained_at=previous.obtained_at,
            )
        case Invalid():
            return replace(row, previous_state=previous.id, previous_reason=previous.reason)
        case None:
            return row
