"""Changing settings: check, persist, then discard and revoke every token the change re-targets.

A token is bound to its provider, endpoints, client, account, scope and server
(`tokens.binding`). After any change, each setting whose binding moved has its token set to Not
acquired at once — the binding check on every read would hide it anyway, but discarding it
eagerly means a re-targeted token is never kept, even encrypted. A removed POP setting takes its
token along.

Every token a change discards is then revoked at the provider it was obtained from, best effort,
as `token delete` does: with the provider, client and token as they were before the change, and
only after the new settings are stored (a change that fails revokes nothing), and only when the
token's binding shows it was obtained for exactly those settings (a token never reaches a
provider it was not obtained for).

One damaged record (ports.SettingsStore) does not stop the others: changes, exports and imports
work on the intact records and leave a damaged one as it is unless they overwrite or remove it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from tokenpost.errors import DamagedRecordError, NotFoundError, TokenpostError, UsageError
from tokenpost.ports import DamagedRecord, FlightLock, HostChecks, Store, TokenRecord
from tokenpost.services.settings_checks import NoHostChecks, SettingsChecks
from tokenpost.services.targets import Target, resolve_target, transition
from tokenpost.settings.document import ConfigDocument, Removals, removed_by
from tokenpost.settings.model import (
    POP_PREFIX,
    AlertSettings,
    AuthMethod,
    MailSetting,
    PopSetting,
    Provider,
    SmtpSetting,
)
from tokenpost.settings.toml_io import merge_secrets
from tokenpost.settings.toml_read import read_document
from tokenpost.settings.validate import validate_alerts
from tokenpost.text import Text
from tokenpost.tokens.binding import NO_BINDING
from tokenpost.tokens.machine import BindingChanged
from tokenpost.tokens.state import Acquired, NotAcquired, TokenState, WaitingForAuthorization

if TYPE_CHECKING:
    from tokenpost.services.deletion import DeleteResult
    from tokenpost.services.endpoints import EndpointResolver

log = logging.getLogger("tokenpost.settings")
_T = TypeVar("_T")


class Revoker(Protocol):
    """Revokes a token at the provider it was obtained from (`services.deletion.Deleter`)."""

    async def revoke(self, target: Target, state: TokenState) -> DeleteResult: ...


@dataclass(frozen=True, slots=True)
class DiscardedToken:
    """A token a settings change discarded, and what revoking it at the provider gave:
    `revoked` True, False (refused or failed) or None (not attempted), `detail` in words."""

    setting_id: str
    revoked: bool | None
    detail: str | Text


@dataclass(frozen=True, slots=True)
class ImportResult:
    removed: Removals
    discarded: tuple[DiscardedToken, ...]


@dataclass
class SettingsService:
    store: Store
    lock: FlightLock
    host: HostChecks = field(default_factory=NoHostChecks)
    revoker: Revoker | None = None  # None: discarded tokens are only forgotten here
    resolver: EndpointResolver | None = None  # for a generic provider's offered scopes

    @property
    def _checks(self) -> SettingsChecks:
        return SettingsChecks(self.host, self.resolver)

    async def put_provider(self, provider: Provider) -> tuple[DiscardedToken, ...]:
        """Check, store (a damaged record too) and reconcile the settings that use it; returns
        the tokens discarded.

        Raises:
            ValidationError: every problem at once (rules, host checks, offered scopes).
        """
        await self._checks.provider(provider)
        users = [s for s in await self._settings() if s.provider == provider.name]
        before = await self._targets(users)
        await self.store.put_provider(provider)
        return await self._revoke(await self._reconcile(users), before)

    async def remove_provider(self, name: str) -> None:
        """Refused by the store while a setting uses it; a damaged record is removed too."""
        await self.store.delete_provider(name)

    async def put_smtp(self, setting: SmtpSetting) -> tuple[DiscardedToken, ...]:
        """Like `put_provider`, for the SMTP setting: only its own token is reconciled."""
        await self._check_mail(setting)
        before = await self._targets(_listed(await _intact(self.store.get_smtp())))
        await self.store.put_smtp(setting)
        return await self._revoke(await self._reconcile([setting]), before)

    async def put_pop(self, setting: PopSetting) -> tuple[DiscardedToken, ...]:
        """Like `put_provider`, for a POP setting: only its own token is reconciled, so adding
        one costs the same however many there are."""
        await self._check_mail(setting)
        before = await self._targets(_listed(await _intact(self.store.get_pop(setting.name))))
        await self.store.put_pop(setting)
        return await self._revoke(await self._reconcile([setting]), before)

    async def remove_pop(self, name: str) -> tuple[DiscardedToken, ...]:
        """Remove the POP setting (a damaged one too) and revoke its token."""
        try:
            old = await self.store.get_pop(name)
            exists = old is not None
        except DamagedRecordError:
            old, exists = None, True
        if not exists:
            raise NotFoundError("no POP setting {name!r}", name=name)
        before = await self._targets(_listed(old))
        return await self._revoke([await self._delete_pop(name)], before)

    async def put_alerts(self, alerts: AlertSettings) -> None:
        """Alerts bind no token: nothing to reconcile."""
        validate_alerts(alerts)
        await self.store.put_alerts(alerts)

    async def export(self) -> ConfigDocument:
        """The intact settings (`damaged` names the others)."""
        return await export_document(self.store)

    async def damaged(self) -> list[DamagedRecord]:
        return await self.store.damaged_records()

    async def import_toml(self, text: str, *, replace: bool = False) -> ImportResult:
        """Make the stored settings those of a TOML settings document (`settings.toml_read`).

        Secrets the document omits are kept where they still go to the same place. Nothing
        changes when any field is invalid, or when the document would remove a provider or a POP
        setting and `replace` is not set. Damaged records the document does not name stay.

        Raises:
            ValidationError: every problem of the document, at once.
            UsageError: it would remove settings and `replace` is not set; the message lists them.
        """
        stored = await self.export()
        parsed, problems = read_document(text)
        doc = merge_secrets(parsed, stored)
        await self._checks.document(doc, problems)
        removals = removed_by(stored, doc)
        if removals and not replace:
            raise UsageError(
                "the file would remove {items}: give --replace to remove them (and revoke their "
                "tokens), or add them to the file",
                items=removals.as_texts(),
            )
        before = await self._targets(await self._settings())
        discarded = await self.apply_document(doc)
        return ImportResult(removals, await self._revoke(discarded, before))

    async def apply_document(self, doc: ConfigDocument) -> list[TokenRecord]:
        """Make the stored settings equal the (already checked) document, as `removed_by`
        describes; returns the tokens this discarded, as they were (none is revoked here)."""
        removals = removed_by(await self.export(), doc)
        for provider in doc.providers:
            await self.store.put_provider(provider)
        if doc.smtp is not None:
            await self.store.put_smtp(doc.smtp)
        if doc.alerts is not None:
            await self.store.put_alerts(doc.alerts)
        for pop in doc.pop:
            await self.store.put_pop(pop)
        discarded = [await self._delete_pop(name) for name in removals.pop]
        for name in removals.providers:
            await self.store.delete_provider(name)
        return discarded + await self.reconcile()

    async def reconcile(self) -> list[TokenRecord]:
        """Discard tokens whose binding no longer matches their setting; returns them as they
        were before."""
        return await self._reconcile(await self._settings())

    async def _reconcile(self, settings: Sequence[MailSetting]) -> list[TokenRecord]:
        """`reconcile` for `settings` only (each provider read once)."""
        providers = _Providers(self.store)
        discarded = []
        for setting in settings:
            record = await self._reconcile_one(setting, await providers.binding(setting))
            if record is not None:
                discarded.append(record)
        return discarded

    async def _reconcile_one(self, setting: MailSetting, binding: str | None) -> TokenRecord | None:
        """Discard the setting's token unless it has `binding` (None: its provider is
        unreadable, so the token is left to the check on each use)."""
        if binding is None:
            return None
        async with self.lock.hold(setting.setting_id):
            record = await self.store.load_token(setting.setting_id)
            if isinstance(record.state, NotAcquired) or record.binding == binding:
                return None
            await transition(self.store, record, BindingChanged(), binding=binding)
        log.info("settings of %s changed: its token was discarded", setting.setting_id)
        return record

    async def _delete_pop(self, name: str) -> TokenRecord:
        """Delete the POP setting with its token; returns the token as it was."""
        async with self.lock.hold(POP_PREFIX + name):
            record = await self.store.load_token(POP_PREFIX + name)
            await self.store.delete_pop(name)
        return record

    async def _settings(self) -> list[MailSetting]:
        """The intact mail settings, SMTP first."""
        smtp = await _intact(self.store.get_smtp())
        pops = sorted(await self.store.list_pop(), key=lambda p: p.name)
        return [smtp, *pops] if smtp is not None else list(pops)

    async def _targets(self, settings: Sequence[MailSetting]) -> dict[str, Target]:
        """What each OAuth 2.0 setting's token is for, now (captured before a change)."""
        providers = _Providers(self.store)
        found: dict[str, Target] = {}
        for setting in settings:
            target = await providers.target(setting)
            if target is not None:
                found[setting.setting_id] = target
        return found

    async def _revoke(
        self, records: Sequence[TokenRecord], before: dict[str, Target]
    ) -> tuple[DiscardedToken, ...]:
        """Revoke each discarded token that held one, with the target it was obtained for."""
        results = []
        for record in records:
            if not _holds_token(record.state):
                continue
            target = before.get(record.setting_id)
            if target is None or target.binding != record.binding:
                reason = Text("not revoked: the settings it was obtained for could not be read")
                results.append(DiscardedToken(record.setting_id, None, reason))
            elif self.revoker is None:
                results.append(DiscardedToken(record.setting_id, None, Text("not revoked")))
            else:
                revoked = await self.revoker.revoke(target, record.state)
                results.append(DiscardedToken(record.setting_id, revoked.revoked, revoked.detail))
        for result in results:
            log.info("the discarded token of %s: %s", result.setting_id, result.detail)
        return tuple(results)

    async def _check_mail(self, setting: SmtpSetting | PopSetting) -> None:
        """The rules, with the one provider the setting names (read alone)."""
        providers: dict[str, Provider] = {}
        damaged: list[str] = []
        if setting.provider:
            try:
                found = await self.store.get_provider(setting.provider)
            except DamagedRecordError:
                damaged.append(setting.provider)
            else:
                if found is not None:
                    providers[found.name] = found
        await self._checks.mail(setting, providers, damaged)


class _Providers:
    """The providers one change reads, each once, with the targets they resolve."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._read: dict[str, Provider | None] = {}

    async def _get(self, name: str) -> Provider | None:
        """Raises DamagedRecordError for a damaged record (not kept: rare, and read again)."""
        if name not in self._read:
            self._read[name] = await self._store.get_provider(name)
        return self._read[name]

    async def target(self, setting: MailSetting) -> Target | None:
        """The setting's target, or None when it has none (no OAuth 2.0, its provider gone or
        damaged): nothing to revoke with."""
        if setting.auth is not AuthMethod.OAUTH2 or not setting.provider:
            return None
        try:
            return resolve_target(setting, await self._get(setting.provider))
        except TokenpostError:
            return None

    async def binding(self, setting: MailSetting) -> str | None:
        """The binding the setting's token must have now: `NO_BINDING` when no token may stay
        (no longer OAuth 2.0, or its provider is gone); None when its provider is damaged."""
        if setting.auth is not AuthMethod.OAUTH2 or not setting.provider:
            return NO_BINDING
        try:
            provider = await self._get(setting.provider)
        except DamagedRecordError:
            return None
        try:
            return resolve_target(setting, provider).binding
        except TokenpostError:
            return NO_BINDING


def _holds_token(state: TokenState) -> bool:
    """True when `state` holds a token someone could still use (and so worth revoking)."""
    if isinstance(state, WaitingForAuthorization):
        # The token still serving mail while a new one is awaited.
        return isinstance(state.previous, Acquired)
    return isinstance(state, Acquired)


async def export_document(store: Store) -> ConfigDocument:
    """The intact settings of `store` (its `damaged_records` names the others); reads only."""
    return ConfigDocument(
        tuple(sorted(await store.list_providers(), key=lambda p: p.name)),
        await _intact(store.get_smtp()),
        tuple(sorted(await store.list_pop(), key=lambda p: p.name)),
        await _intact(store.get_alerts()),
    )


def _listed(setting: MailSetting | None) -> list[MailSetting]:
    return [] if setting is None else [setting]


async def _intact(read: Awaitable[_T]) -> _T | None:
    """The record `read` returns, or None when the store says it is damaged."""
    try:
        return await read
    except DamagedRecordError:
        return None
