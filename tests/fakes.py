"""Fakes of tokenpost's own ports (never of libraries): for service tests without I/O."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tokenpost.errors import ConflictError, FlightLockBusyError, StoreError, UsageError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.ports import DamagedRecord, TokenRecord
from tokenpost.settings.model import AlertSettings, PopSetting, Provider, SmtpSetting
from tokenpost.settings.network import Network
from tokenpost.tokens.state import NotAcquired, TokenState


@dataclass
class FakeClock:
    """Time stands still until a sleep advances it; sleeps yield to other tasks."""

    t: float = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class MemoryStore:
    providers: dict[str, Provider] = field(default_factory=dict)
    smtp: SmtpSetting | None = None
    pops: dict[str, PopSetting] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    writes: int = 0
    revisions_read: int = 0

    async def revision(self) -> int:
        """A new number at every call: tests change the fields above directly, so no reader may
        keep what it read from this store."""
        self.revisions_read += 1
        return self.revisions_read

    async def list_providers(self) -> list[Provider]:
        return list(self.providers.values())

    async def get_provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    async def put_provider(self, provider: Provider) -> None:
        self.providers[provider.name] = provider

    async def delete_provider(self, name: str) -> None:
        if self.smtp and self.smtp.provider == name:
            raise UsageError("in use")
        self.providers.pop(name)

    async def get_smtp(self) -> SmtpSetting | None:
        return self.smtp

    async def put_smtp(self, setting: SmtpSetting) -> None:
        self.smtp = setting

    async def damaged_records(self) -> list[DamagedRecord]:
        return []

    async def list_pop(self) -> list[PopSetting]:
        return list(self.pops.values())

    async def get_pop(self, name: str) -> PopSetting | None:
        return self.pops.get(name)

    async def put_pop(self, setting: PopSetting) -> None:
        self.pops[setting.name] = setting

    async def delete_pop(self, name: str) -> None:
        self.pops.pop(name)
        self.tokens.pop("pop:" + name, None)

    async def get_alerts(self) -> AlertSettings:
        return self.alerts

    async def put_alerts(self, alerts: AlertSettings) -> None:
        self.alerts = alerts

    async def load_token(self, setting_id: str) -> TokenRecord:
        await asyncio.sleep(0)
        return self.tokens.get(setting_id) or TokenRecord(setting_id, NotAcquired(), "", 0, 0.0)

    async def load_tokens(self) -> list[TokenRecord]:
        await asyncio.sleep(0)
        return [self.tokens[k] for k in sorted(self.tokens)]

    async def save_token(
        self, setting_id: str, state: TokenState, *, binding: str, expected_version: int
    ) -> TokenRecord:
        await asyncio.sleep(0)
        current = self.tokens.get(setting_id)
        version = current.version if current else 0
        if version != expected_version:
            raise ConflictError(f"{setting_id}: version {version}, expected {expected_version}")
        record = TokenRecord(setting_id, state, binding, version + 1, 0.0)
        self.tokens[setting_id] = record
        self.writes += 1
        return record

    async def close(self) -> None:
        return None


@dataclass
class RefusingStore(MemoryStore):
    """A MemoryStore whose token writes fail with StoreError while `refusing` (a full disk, a
    read-only file system): what the refresher must survive without losing a grant."""

    refusing: bool = False
    refused: int = 0

    async def save_token(
        self, setting_id: str, state: TokenState, *, binding: str, expected_version: int
    ) -> TokenRecord:
        if self.refusing:
            await asyncio.sleep(0)
            self.refused += 1
            raise StoreError("the store {where} failed: {detail}", where="memory", detail="full")
        return await super().save_token(
            setting_id, state, binding=binding, expected_version=expected_version
        )


@dataclass
class MemoryLock:
    """The flight lock of one process; `timeout` bounds the wait as the real locks do."""

    locks: dict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    @asynccontextmanager
    async def hold(self, key: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        lock = self.locks[key]
        if timeout is not None and lock.locked():
            try:
                async with asyncio.timeout(max(timeout, 0.0)):
                    await lock.acquire()
            except TimeoutError:
                raise FlightLockBusyError("{setting} is busy", setting=key) from None
        else:
            await lock.acquire()
        try:
            yield
        finally:
            lock.release()


Responder = Callable[[HttpRequest], HttpResponse]


@dataclass
class ScriptedHttp:
    """Answers each request with the responder for its URL; records every request."""

    routes: dict[str, Responder] = field(default_factory=dict)
    requests: list[HttpRequest] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)  # each request's, in order
    delay: float = 0.0

    async def send(
        self, request: HttpRequest, *, network: Network, timeout: float = 30.0
    ) -> HttpResponse:
        self.requests.append(request)
        self.networks.append(network)
        if self.delay:
            await asyncio.sleep(self.delay)
        else:
            await asyncio.sleep(0)
        return self.routes[request.url](request)

    def count(self, url: str) -> int:
        return sum(1 for r in self.requests if r.url == url)


def json_response(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode(), (("content-type", "application/json"),))


@dataclass
class FakeOwners:
    """FlowOwners: this process is `mine` on `host`; `gone` lists owners known to be gone."""

    host: str = "host-a"
    mine: str = "0" * 32
    gone: set[str] = field(default_factory=set)
    claims: int = 0

    def claim(self) -> tuple[str, str] | None:
        self.claims += 1
        return self.host, self.mine

    def is_gone(self, host: str, owner_id: str) -> bool:
        return host == self.host and owner_id in self.gone
