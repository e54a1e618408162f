"""What `token status` shows: every setting's token state, read without network or writes.

A damaged setting (the store cannot read or authenticate it) is listed in its place as Invalid
with the store's reason and fix, and so is a setting whose provider record is damaged: one
damaged record never hides the others (issue 8, item 3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tokenpost.errors import DamagedRecordError, TokenpostError
from tokenpost.oauth.pending import DevicePending
from tokenpost.ports import DamagedRecord, Store
from tokenpost.services.targets import all_settings, load_current, target_of
from tokenpost.settings.model import POP_PREFIX, SMTP_ID, AuthMethod, MailSetting
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
    `auth` is None for a damaged setting (its stored method cannot be trusted)."""

    setting_id: str
    auth: AuthMethod | None
    account: str | None
    provider: str | None
    state: StateId | None
    expires_at: float | None = None
    reason: str | None = None
    user_code: str | None = None
    verification_uri: str | None = None
    failures: int = 0


async def status(store: Store) -> list[SettingStatus]:
    """Every setting, SMTP first, then POP settings by name; damaged ones as Invalid."""
    rows = [await _row(store, s) for s in await all_settings(store)]
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
        reason=str(record.reason),
    )


async def _row(store: Store, setting: MailSetting) -> SettingStatus:
    row = SettingStatus(
        setting.setting_id, setting.auth, setting.account, setting.provider, state=None
    )
    if setting.auth is not AuthMethod.OAUTH2:
        return row
    try:
        target = await target_of(store, setting)
    except DamagedRecordError as error:  # the provider's record
        return replace(row, state=StateId.INVALID, reason=str(error))
    except TokenpostError as error:
        return replace(row, state=StateId.NOT_ACQUIRED, reason=str(error))
    state = (await load_current(store, target)).state
    return _with_details(replace(row, state=state.id), state)


def _with_details(row: SettingStatus, state: TokenState) -> SettingStatus:
    match state:
        case Acquired():
            return replace(
                row, expires_at=state.expires_at, reason=state.last_error, failures=state.failures
            )
        case Invalid():
            return replace(row, reason=state.reason)
        case NotAcquired():
            return replace(row, reason=state.note)
        case WaitingForAuthorization(flow=DevicePending() as flow):
            return replace(
                row,
                expires_at=flow.expires_at,
                user_code=flow.user_code,
                verification_uri=flow.verification_uri,
            )
        case WaitingForAuthorization():
            return replace(row, expires_at=state.flow.expires_at)
