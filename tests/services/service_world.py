"""A tokenpost world of fakes of our own ports, for service tests."""

from __future__ import annotations

from typing import Any

from fakes import FakeClock, FakeOwners, MemoryLock, MemoryStore, ScriptedHttp
from tokenpost.secret import Secret
from tokenpost.services.authorize import Authorizer
from tokenpost.services.deletion import Deleter
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.refresh import Refresher
from tokenpost.services.settings import SettingsService
from tokenpost.settings.model import AuthMethod, Flow, Preset, Provider, Security, SmtpSetting

TOKEN_URL = "https://as.example/token"
DEVICE_URL = "https://as.example/device"
REVOKE_URL = "https://as.example/revoke"
AUTHZ_URL = "https://as.example/authorize"


def provider(**overrides: object) -> Provider:
    base: dict[str, object] = {
        "name": "as",
        "preset": Preset.GENERIC,
        "client_id": "client-1",
        "flow": Flow.DEVICE,
        "token_endpoint": TOKEN_URL,
        "device_authorization_endpoint": DEVICE_URL,
        "authorization_endpoint": AUTHZ_URL,
        "revocation_endpoint": REVOKE_URL,
        "scope": ("mail.send", "offline_access"),
    }
    base.update(overrides)
    return Provider(**base)  # type: ignore[arg-type]


def smtp_setting(**overrides: object) -> SmtpSetting:
    base: dict[str, object] = {
        "server": "smtp.example",
        "port": 587,
        "security": Security.STARTTLS,
        "timeout": 30,
        "sender_name": "Scanner",
        "sender_address": "scanner@example.com",
        "auth": AuthMethod.OAUTH2,
        "provider": "as",
        "account": "scanner@example.com",
    }
    base.update(overrides)
    return SmtpSetting(**base)  # type: ignore[arg-type]


class World:
    def __init__(self, store: MemoryStore | None = None, **refresher_options: Any) -> None:
        self.store = store if store is not None else MemoryStore()
        self.http = ScriptedHttp()
        self.lock = MemoryLock()
        self.clock = FakeClock()
        self.owners = FakeOwners()
        self.events: list[tuple[str, str]] = []
        resolver = EndpointResolver(self.http)

        def hook(event: str, setting_id: str, detail: str) -> None:
            self.events.append((event, setting_id))

        self.refresher = Refresher(
            self.store,
            self.http,
            self.lock,
            self.clock,
            resolver,
            on_event=hook,
            **refresher_options,
        )
        self.authorizer = Authorizer(
            self.store,
            self.http,
            self.lock,
            self.clock,
            resolver,
            _no_listener,
            on_event=hook,
            owners=self.owners,
        )
        self.deleter = Deleter(
            self.store, self.http, self.lock, self.clock, resolver, on_event=hook
        )
        self.settings = SettingsService(self.store, self.lock)


async def _no_listener(redirect: object) -> object:
    raise AssertionError("no browser flow in these tests")


def secret(text: str) -> Secret:
    return Secret(text)
