"""A MemoryStore with damaged records, for the damaged-record contract of ports.SettingsStore."""

from __future__ import annotations

from dataclasses import dataclass, field

from fakes import MemoryStore
from tokenpost.errors import DamagedRecordError
from tokenpost.ports import DamagedRecord
from tokenpost.settings.model import AlertSettings, PopSetting, Provider, SmtpSetting
from tokenpost.text import Text


@dataclass
class DamagedStore(MemoryStore):
    """A MemoryStore in which records can be damaged, per the SettingsStore contract: `get_*`
    raises, `list_*` leaves them out, `put_*` and `delete_*` overwrite or remove them."""

    damaged: dict[str, Text] = field(default_factory=dict)

    def damage(self, record_id: str) -> None:
        self.damaged[record_id] = Text("{record} cannot be read", record=record_id)

    def _check(self, record_id: str) -> None:
        if record_id in self.damaged:
            raise DamagedRecordError("{record} is damaged", record=record_id)

    async def damaged_records(self) -> list[DamagedRecord]:
        return [DamagedRecord(k, v) for k, v in sorted(self.damaged.items())]

    async def list_providers(self) -> list[Provider]:
        return [p for p in self.providers.values() if f"provider:{p.name}" not in self.damaged]

    async def get_provider(self, name: str) -> Provider | None:
        self._check(f"provider:{name}")
        return await super().get_provider(name)

    async def put_provider(self, provider: Provider) -> None:
        self.damaged.pop(f"provider:{provider.name}", None)
        await super().put_provider(provider)

    async def get_smtp(self) -> SmtpSetting | None:
        self._check("smtp")
        return await super().get_smtp()

    async def put_smtp(self, setting: SmtpSetting) -> None:
        self.damaged.pop("smtp", None)
        await super().put_smtp(setting)

    async def list_pop(self) -> list[PopSetting]:
        return [p for p in self.pops.values() if f"pop:{p.name}" not in self.damaged]

    async def get_pop(self, name: str) -> PopSetting | None:
        self._check(f"pop:{name}")
        return await super().get_pop(name)

    async def put_pop(self, setting: PopSetting) -> None:
        self.damaged.pop(f"pop:{setting.name}", None)
        await super().put_pop(setting)

    async def delete_provider(self, name: str) -> None:
        self.damaged.pop(f"provider:{name}", None)
        await super().delete_provider(name)

    async def delete_pop(self, name: str) -> None:
        self.damaged.pop(f"pop:{name}", None)
        await super().delete_pop(name)

    async def get_alerts(self) -> AlertSettings:
        self._check("alerts")
        return await super().get_alerts()
