"""A mail setting resolved to everything its token depends on: provider, endpoints, flow, scope.

The binding computed here is the token's identity. A stored token whose binding differs from the
setting's current one was obtained for another provider, account, scope, endpoint or server: it is
never used, and reads as Not acquired (a token must never reach a server it was not obtained for).

A pending authorization is read through the same way: once its code has expired, or the process
that waits for it is gone (`ports.FlowOwners`: a `token get` killed by SIGKILL), it reads as ended,
and the token it replaced is back in force. Reads never write; the next write of the token (or the
scheduler of `serve`) records what the read saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenpost.errors import DamagedRecordError, NotFoundError, UsageError
from tokenpost.oauth.providers import effective_flow, scopes_for
from tokenpost.ports import UNTRACKED_OWNERS, FlowOwners, SettingsStore, TokenRecord, TokenStore

if TYPE_CHECKING:
    from tokenpost.oauth.rfc6749 import ClientAuth
    from tokenpost.tokens.machine import TokenEvent
from tokenpost.settings.model import (
    POP_PREFIX,
    SMTP_ID,
    AuthMethod,
    Flow,
    MailSetting,
    Provider,
    use_of,
)
from tokenpost.text import Text
from tokenpost.tokens.binding import binding_of
from tokenpost.tokens.state import NotAcquired, TokenState, WaitingForAuthorization


@dataclass(frozen=True, slots=True)
class Target:
    """An OAuth 2.0 mail setting with its provider resolved."""

    setting: MailSetting
    provider: Provider
    flow: Flow
    scope: tuple[str, ...]
    binding: str

    @property
    def setting_id(self) -> str:
        return self.setting.setting_id

    @property
    def account(self) -> str:
        return self.setting.account or ""

    @property
    def client(self) -> ClientAuth:
        # Imported here: reading a token's state (status) needs no protocol machinery.
        from tokenpost.oauth.rfc6749 import ClientAuth

        return ClientAuth(self.provider.client_id, self.provider.client_secret)


async def all_settings(store: SettingsStore) -> list[MailSetting]:
    """Every intact mail setting: the SMTP setting first, then the POP settings by name. A
    damaged one is left out, as `list_pop` leaves it out (`store.damaged_records` names it)."""
    pops = sorted(await store.list_pop(), key=lambda p: p.name)
    try:
        smtp = await store.get_smtp()
    except DamagedRecordError:
        smtp = None
    return [smtp, *pops] if smtp is not None else list(pops)


async def oauth_settings(store: SettingsStore) -> list[MailSetting]:
    """The mail settings that authenticate with an OAuth 2.0 token, in `all_settings` order."""
    return [s for s in await all_settings(store) if s.auth is AuthMethod.OAUTH2]


async def load_setting(store: SettingsStore, setting_id: str) -> MailSetting:
    """The SMTP setting or the named POP setting. Raises NotFoundError."""
    if setting_id == SMTP_ID:
        smtp = await store.get_smtp()
        if smtp is None:
            raise NotFoundError("no SMTP setting: run 'tokenpost smtp set' first")
        return smtp
    name = setting_id.removeprefix(POP_PREFIX)
    pop = await store.get_pop(name)
    if pop is None:
        raise NotFoundError("no POP setting {name!r}", name=name)
    return pop


async def load_target(store: SettingsStore, setting_id: str) -> Target:
    """Resolve an OAuth 2.0 setting.

    Raises:
        NotFoundError: no such setting, or its provider is gone.
        UsageError: the setting does not use OAuth 2.0 (exit 2, as for `token get` on it).
    """
    setting = await load_setting(store, setting_id)
    return await target_of(store, setting)


async def target_of(store: SettingsStore, setting: MailSetting) -> Target:
    """The setting with its provider read from the store. Raises as `resolve_target`, and
    DamagedRecordError when the provider's record is damaged."""
    if setting.auth is not AuthMethod.OAUTH2 or not setting.provider:
        raise _no_token(setting)
    return resolve_target(setting, await store.get_provider(setting.provider))


def resolve_target(setting: MailSetting, provider: Provider | None) -> Target:
    """The setting with `provider`, the record its `provider` names (None: there is none).

    Raises:
        UsageError: the setting does not use OAuth 2.0.
        NotFoundError: its provider is gone.
    """
    if setting.auth is not AuthMethod.OAUTH2 or not setting.provider:
        raise _no_token(setting)
    if provider is None:
        raise NotFoundError(
            "{setting}: provider {provider!r} does not exist",
            setting=setting.setting_id,
            provider=setting.provider,
        )
    scope = scopes_for(provider, use_of(setting))
    flow = effective_flow(provider)
    binding = binding_of(provider, setting, scope=scope)
    return Target(setting, provider, flow, scope, binding)


def _no_token(setting: MailSetting) -> UsageError:
    return UsageError(
        "{setting} uses authentication '{auth}', not oauth2: it has no token",
        setting=setting.setting_id,
        auth=str(setting.auth),
    )


def never_written(setting_id: str) -> TokenRecord:
    """The record of a setting whose token was never written, as `load_token` reads it."""
    return TokenRecord(setting_id, NotAcquired(), binding="", version=0, updated_at=0.0)


def current_record(
    record: TokenRecord,
    target: Target,
    *,
    now: float | None = None,
    owners: FlowOwners = UNTRACKED_OWNERS,
) -> TokenRecord:
    """The record as it must be read for `target` (without writing: reads never write):

    - a token bound to other settings reads as Not acquired;
    - given `now`, a pending flow that has ended (`flow_ended`) reads as the state it replaced.
    """
    state = record.state
    ended = None if now is None else flow_ended(state, now=now, owners=owners)
    bound = isinstance(state, NotAcquired) or record.binding == target.binding
    if bound and ended is None:
        return record
    # Imported here: `token status` reads records on every start and rarely needs the machine.
    from tokenpost.tokens.machine import AuthorizationEnded, BindingChanged, apply

    if not bound:
        state = apply(state, BindingChanged())
    elif ended is not None:
        state = apply(state, AuthorizationEnded(ended))
    return TokenRecord(record.setting_id, state, target.binding, record.version, record.updated_at)


def flow_ended(state: TokenState, *, now: float, owners: FlowOwners) -> Text | None:
    """Why the pending flow of `state` has ended although the state still waits for it, or None
    (not waiting, or the flow may still complete).

    It has ended when its code has expired, or when its owner (the process that started it)
    was on this host and is gone. An owner on another host, or no recorded owner, is judged by
    the expiry alone.
    """
    if not isinstance(state, WaitingForAuthorization):
        return None
    if now >= state.flow.expires_at:
        return Text("the authorization expired before it was completed")
    host, owner = state.owner_host, state.owner_id
    if host and owner and owners.is_gone(host, owner):
        return Text(
            "the authorization was abandoned: the command waiting for it is no longer running"
        )
    return None


async def load_current(
    store: TokenStore,
    target: Target,
    *,
    now: float | None = None,
    owners: FlowOwners = UNTRACKED_OWNERS,
) -> TokenRecord:
    """The setting's token record, read through its binding and, given `now`, through the end
    of its pending flow (`current_record`)."""
    record = await store.load_token(target.setting_id)
    return current_record(record, target, now=now, owners=owners)


async def transition(
    store: TokenStore, record: TokenRecord, event: TokenEvent, *, binding: str
) -> TokenRecord:
    """Apply `event` and persist it with compare-and-set against `record.version`."""
    from tokenpost.tokens.machine import apply

    state = apply(record.state, event)
    return await store.save_token(
        record.setting_id, state, binding=binding, expected_version=record.version
    )
