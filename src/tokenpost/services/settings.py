"""Changing settings: validate, persist, then discard every token the change re-targets.

A token is bound to its provider, endpoints, client, account, scope and server
(`tokens.binding`). After any change, each setting whose binding moved has its token set to Not
acquired at once — the binding check on every read would hide it anyway, but discarding it
eagerly means a re-targeted token is never kept, even encrypted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokenpost.errors import DamagedRecordError, NotFoundError, TokenpostError
from tokenpost.ports import FlightLock, Store
from tokenpost.services.targets import all_settings, target_of, transition
from tokenpost.settings.document import ConfigDocument
from tokenpost.settings.model import (
    POP_PREFIX,
    AlertSettings,
    MailSetting,
    PopSetting,
    Provider,
    SmtpSetting,
)
from tokenpost.settings.validate import (
    validate_alerts,
    validate_pop,
    validate_provider,
    validate_smtp,
)
from tokenpost.tokens.machine import BindingChanged
from tokenpost.tokens.state import NotAcquired

log = logging.getLogger("tokenpost.settings")


@dataclass
class SettingsService:
    store: Store
    lock: FlightLock

    async def put_provider(self, provider: Provider) -> None:
        validate_provider(provider)
        await self.store.put_provider(provider)
        await self.reconcile()

    async def remove_provider(self, name: str) -> None:
        await self.store.delete_provider(name)

    async def put_smtp(self, setting: SmtpSetting) -> None:
        validate_smtp(setting, await self._providers())
        await self.store.put_smtp(setting)
        await self.reconcile()

    async def put_pop(self, setting: PopSetting) -> None:
        validate_pop(setting, await self._providers())
        await self.store.put_pop(setting)
        await self.reconcile()

    async def remove_pop(self, name: str) -> None:
        try:
            missing = await self.store.get_pop(name) is None
        except DamagedRecordError:
            missing = False  # a damaged setting is removed all the same
        if missing:
            raise NotFoundError(f"no POP setting {name!r}")
        async with self.lock.hold(POP_PREFIX + name):
            await self.store.delete_pop(name)

    async def put_alerts(self, alerts: AlertSettings) -> None:
        """Alerts bind no token: nothing to reconcile."""
        validate_alerts(alerts)
        await self.store.put_alerts(alerts)

    async def export(self) -> ConfigDocument:
        return ConfigDocument(
            tuple(sorted(await self.store.list_providers(), key=lambda p: p.name)),
            await self.store.get_smtp(),
            tuple(sorted(await self.store.list_pop(), key=lambda p: p.name)),
            await self.store.get_alerts(),
        )

    async def apply_document(self, doc: ConfigDocument) -> None:
        """Make the stored settings equal the (already validated) document: its providers and
        POP settings replace the stored ones; its [smtp] replaces the SMTP setting, which stays
        as it is (with its provider) when the document has none; likewise [alerts]."""
        for provider in doc.providers:
            await self.store.put_provider(provider)
        if doc.smtp is not None:
            await self.store.put_smtp(doc.smtp)
        if doc.alerts is not None:
            await self.store.put_alerts(doc.alerts)
        wanted = {p.name for p in doc.pop}
        for pop in doc.pop:
            await self.store.put_pop(pop)
        for old in await self.store.list_pop():
            if old.name not in wanted:
                await self.store.delete_pop(old.name)
        keep = {p.name for p in doc.providers}
        kept_smtp = await self.store.get_smtp()
        if doc.smtp is None and kept_smtp is not None and kept_smtp.provider:
            keep.add(kept_smtp.provider)  # a document without [smtp] leaves the SMTP setting
        for old_provider in await self.store.list_providers():
            if old_provider.name not in keep:
                await self.store.delete_provider(old_provider.name)
        await self.reconcile()

    async def reconcile(self) -> None:
        """Discard tokens whose binding no longer matches their setting."""
        for setting in await all_settings(self.store):
            await self._reconcile_one(setting)

    async def _reconcile_one(self, setting: MailSetting) -> None:
        try:
            binding = (await target_of(self.store, setting)).binding
        except DamagedRecordError:
            return  # its provider's record is damaged: the token waits for it to be set again
        except TokenpostError:
            binding = ""  # no longer OAuth 2.0, or its provider is gone: no token may stay
        async with self.lock.hold(setting.setting_id):
            record = await self.store.load_token(setting.setting_id)
            if isinstance(record.state, NotAcquired) or record.binding == binding:
                return
            await transition(self.store, record, BindingChanged(), binding=binding)
        log.info("settings of %s changed: its token was discarded", setting.setting_id)

    async def _providers(self) -> dict[str, Provider]:
        return {p.name: p for p in await self.store.list_providers()}
