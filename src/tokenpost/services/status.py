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
from typing import Final

from tokenpost.errors import DamagedRecordError, TokenpostError
from tokenpost.oauth.pending import DevicePending
from tokenpost.ports import UNTRACKED_OWNERS, DamagedRecord, FlowOwners, Store, TokenRecord
from tokenpost.services.targets import (
    Target,
    all_settings,
    current_record,
    load_current,
    load_setting,
    never_written,
    resolve_target,
    target_of,
)
from tokenpost.settings.model import POP_PREFIX, SMTP_ID, AuthMethod, MailSetting, Provider
from tokenpost.text import Text, as_text
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    TokenState,
    WaitingForAuthorization,
)
from tokenpost.tokens.state_id import StateId


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

    Every setting's status costs the same few store reads however many settings there are:
    the settings, the providers, the damaged records and the tokens, each read once.

    Raises:
        NotFoundError: `setting_id` names no setting.
    """
    if setting_id is not None:
        try:
            setting = await load_setting(store, setting_id)
        except DamagedRecordError:
            return [_damaged(d) for d in await store.damaged_records() if d.record_id == setting_id]
        return [await _one_row(store, setting, now, owners)]
    rows, _ = await status_and_settings(store, now=now, owners=owners)
    return rows


async def status_and_settings(
    store: Store, *, now: float | None = None, owners: FlowOwners = UNTRACKED_OWNERS
) -> tuple[list[SettingStatus], list[MailSetting]]:
    """`status` of every setting, with the intact settings it was read from (`all_settings`),
    for callers that show more of them than their token."""
    overview = await read_overview(store)
    return overview.at(now, owners), overview.settings


@dataclass(frozen=True, slots=True)
class Overview:
    """Every setting's status as read from the store, before any pending authorization was
    judged against a clock: `rows` (sorted as `status` sorts them) show a Waiting state as it
    is stored; `at` judges them (`targets.flow_ended`). Nothing else in a status changes without
    a write to the store, so an Overview stays true while the store is unchanged."""

    settings: list[MailSetting]
    rows: list[SettingStatus]
    waiting: dict[int, MailSetting]  # index in `rows` -> the setting of a Waiting row
    reads: _Reads

    def at(self, now: float | None, owners: FlowOwners) -> list[SettingStatus]:
        """The rows as `status` reads them at `now` (None: pending flows are not judged)."""
        if now is None or not self.waiting:
            return self.rows
        rows = list(self.rows)
        for index, setting in self.waiting.items():
            rows[index] = _row(setting, self.reads, now, owners)
        return rows

    def current(self, setting: MailSetting) -> TokenRecord:
        """The token record of an OAuth 2.0 `setting` as `targets.load_current` reads it without
        a clock (a pending flow is not judged).

        Raises:
            TokenpostError: its provider is missing or damaged (as `targets.target_of`).
        """
        target = self.reads.target(setting)
        return current_record(self.reads.token(setting.setting_id), target)


async def read_overview(store: Store) -> Overview:
    """Every setting's `Overview`, from one read of each kind of record."""
    settings = await all_settings(store)
    damaged = await store.damaged_records()
    reads = _Reads(
        providers={p.name: p for p in await store.list_providers()},
        broken_providers={
            d.record_id.removeprefix(PROVIDER_PREFIX): d.reason
            for d in damaged
            if d.record_id.startswith(PROVIDER_PREFIX)
        },
        tokens={r.setting_id: r for r in await store.load_tokens()},
    )
    found: list[tuple[SettingStatus, MailSetting | None]] = [
        (_row(s, reads, None, UNTRACKED_OWNERS), s) for s in settings
    ]
    found += [
        (_damaged(d), None)
        for d in damaged
        if d.record_id == SMTP_ID or d.record_id.startswith(POP_PREFIX)
    ]
    found.sort(key=lambda pair: (pair[0].setting_id != SMTP_ID, pair[0].setting_id))
    waiting = {
        index: setting
        for index, (row, setting) in enumerate(found)
        if setting is not None and row.state is StateId.WAITING_FOR_AUTHORIZATION
    }
    return Overview(settings, [row for row, _ in found], waiting, reads)


PROVIDER_PREFIX: Final = "provider:"  # how `damaged_records` names a provider's record


@dataclass(frozen=True, slots=True)
class _Reads:
    """What the status of every setting is computed from, read once."""

    providers: dict[str, Provider]
    broken_providers: dict[str, Text]  # damaged provider records: name -> the store's reason
    tokens: dict[str, TokenRecord]

    def target(self, setting: MailSetting) -> Target:
        """As `targets.target_of` reads it from the store, with the same errors."""
        reason = self.broken_providers.get(setting.provider or "")
        if reason is not None:
            raise DamagedRecordError(reason)
        return resolve_target(setting, self.providers.get(setting.provider or ""))

    def token(self, setting_id: str) -> TokenRecord:
        """As `load_token` reads it: a setting never written as Not acquired at version 0."""
        return self.tokens.get(setting_id) or never_written(setting_id)


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


def _bare(setting: MailSetting) -> SettingStatus:
    return SettingStatus(
        setting.setting_id, setting.auth, setting.account, setting.provider, state=None
    )


def _unresolved(row: SettingStatus, error: TokenpostError) -> SettingStatus:
    """The row of an OAuth 2.0 setting whose provider cannot be resolved."""
    if isinstance(error, DamagedRecordError):  # the provider's record
        return replace(row, state=StateId.INVALID, reason=as_text(error))
    return replace(row, state=StateId.NOT_ACQUIRED, reason=as_text(error))


def _row(
    setting: MailSetting, reads: _Reads, now: float | None, owners: FlowOwners
) -> SettingStatus:
    if setting.auth is not AuthMethod.OAUTH2:
        return _bare(setting)
    try:
        target = reads.target(setting)
    except TokenpostError as error:
        return _unresolved(_bare(setting), error)
    record = current_record(reads.token(setting.setting_id), target, now=now, owners=owners)
    return _with_details(setting, record.state)


async def _one_row(
    store: Store, setting: MailSetting, now: float | None, owners: FlowOwners
) -> SettingStatus:
    if setting.auth is not AuthMethod.OAUTH2:
        return _bare(setting)
    try:
        target = await target_of(store, setting)
    except TokenpostError as error:
        return _unresolved(_bare(setting), error)
    state = (await load_current(store, target, now=now, owners=owners)).state
    return _with_details(setting, state)


def _with_details(setting: MailSetting, state: TokenState) -> SettingStatus:
    """The row of `setting` in `state`, with what the state tells. The three common states
    make their row in one call: a status of ten thousand settings builds ten thousand rows."""
    common = (setting.setting_id, setting.auth, setting.account, setting.provider)
    match state:
        case Acquired():
            return SettingStatus(
                *common,
                state.id,
                expires_at=state.expires_at,
                reason=state.last_error,
                failures=state.failures,
                obtained_at=state.obtained_at,
            )
        case Invalid():
            return SettingStatus(*common, state.id, reason=state.reason)
        case NotAcquired():
            return SettingStatus(*common, state.id, reason=state.note)
        case WaitingForAuthorization():
            waiting = SettingStatus(*common, state.id)
            return _with_previous(_with_flow(waiting, state), state.previous)


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
