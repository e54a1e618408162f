"""A mail setting resolved to everything its token depends on: provider, endpoints, flow, scope.

The binding computed here is the token's identity. A stored token whose binding differs from the
setting's current one was obtained for another provider, account, scope, endpoint or server: it is
never used, and reads as Not acquired (a token must never reach a server it was not obtained for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenpost.errors import DamagedRecordError, NotFoundError, UsageError
from tokenpost.oauth.providers import effective_flow, scopes_for
from tokenpost.ports import SettingsStore, TokenRecord, TokenStore

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
from tokenpost.tokens.binding import binding_of
from tokenpost.tokens.state import NotAcquired


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
    pop = await store.get_pop(setting_id.removeprefix(POP_PREFIX))
    if pop is None:
        raise NotFoundError(f"no POP setting {setting_id.removeprefix(POP_PREFIX)!r}")
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
    if setting.auth is not AuthMethod.OAUTH2 or not setting.provider:
        raise UsageError(
            f"{setting.setting_id} uses authentication '{setting.auth}', not oauth2: "
            "it has no token"
        )
    provider = await store.get_provider(setting.provider)
    if provider is None:
        raise NotFoundError(f"{setting.setting_id}: provider {setting.provider!r} does not exist")
    scope = scopes_for(provider, use_of(setting))
    flow = effective_flow(provider)
    binding = binding_of(provider, setting, scope=scope)
    return Target(setting, provider, flow, scope, binding)


def current_record(record: TokenRecord, target: Target) -> TokenRecord:
    """The record as it must be read for `target`: a token bound to other settings reads as
    Not acquired (without writing: reads never write)."""
    if isinstance(record.state, NotAcquired) or record.binding == target.binding:
        return record
    # Imported here: `token status` reads records on every start and rarely needs the machine.
    from tokenpost.tokens.machine import BindingChanged, apply

    return TokenRecord(
        record.setting_id,
        apply(record.state, BindingChanged()),
        target.binding,
        record.version,
        record.updated_at,
    )


async def load_current(store: TokenStore, target: Target) -> TokenRecord:
    """The setting's token record, read through its binding (`current_record`)."""
    return current_record(await store.load_token(target.setting_id), target)


async def transition(
    store: TokenStore, record: TokenRecord, event: TokenEvent, *, binding: str
) -> TokenRecord:
    """Apply `event` and persist it with compare-and-set against `record.version`."""
    from tokenpost.tokens.machine import apply

    state = apply(record.state, event)
    return await store.save_token(
        record.setting_id, state, binding=binding, expected_version=record.version
    )
