"""The settings commands over a store with a damaged record (the store's contract, faked: the
real store reports damage through the same port), run in-process with click's runner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

import click
import pytest
from click.testing import CliRunner, Result
from service_world import provider, smtp_setting

from damaged_store import DamagedStore
from fakes import MemoryLock
from tokenpost.cli.config_cmds import config
from tokenpost.cli.context import CliContext
from tokenpost.cli.provider_cmds import provider as provider_group
from tokenpost.cli.settings_cmds import pop, smtp
from tokenpost.errors import UsageError
from tokenpost.services.settings import SettingsService
from tokenpost.settings.model import AuthMethod, PopSetting, Security

T = TypeVar("T")
FAX = PopSetting(
    name="fax",
    server="pop.example",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.OAUTH2,
    deliver_to="/var/spool/fax",
    provider="as",
    account="fax@example.com",
)
SMTP_IN_FULL = (
    "--server", "smtp.example", "--port", "587", "--security", "starttls", "--timeout", "30",
    "--sender-name", "Scanner", "--sender-address", "scanner@example.com", "--auth", "oauth2",
    "--provider", "as", "--account", "scanner@example.com",
)  # fmt: skip


@dataclass
class FakeCli(CliContext):
    """The CLI context with the app built from fakes of our own ports."""

    app: Any = None

    def run(self, work: Callable[[Any], Awaitable[T]], *, writes: bool = True) -> T:
        async def body() -> T:
            return await work(self.app)

        return asyncio.run(body())

    def read(self, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        return asyncio.run(work(self.app.store))


@pytest.fixture
async def store() -> DamagedStore:
    s = DamagedStore()
    await s.put_provider(provider())
    await s.put_smtp(smtp_setting())
    await s.put_pop(FAX)
    return s


def invoke(store: DamagedStore, command: click.Command, *args: str) -> Result:
    settings = SettingsService(store, MemoryLock())
    cli = FakeCli(
        home=None, lang="en", debug=False, app=SimpleNamespace(store=store, settings=settings)
    )
    return CliRunner().invoke(command, list(args), obj=cli)


def test_smtp_set_over_a_damaged_record_needs_it_in_full(store: DamagedStore) -> None:
    store.damage("smtp")
    result = invoke(store, smtp, "set", "--timeout", "60")
    assert isinstance(result.exception, UsageError)
    message = str(result.exception)
    assert "smtp is damaged" in message
    assert "--server" in message
    assert "--sender-address" in message
    assert "smtp" in {d.record_id for d in asyncio.run(store.damaged_records())}

    result = invoke(store, smtp, "set", *SMTP_IN_FULL)
    assert result.exit_code == 0, result.output
    assert result.output == "SMTP setting saved.\n"
    assert asyncio.run(store.damaged_records()) == []


def test_pop_add_over_a_damaged_record_needs_it_in_full(store: DamagedStore) -> None:
    store.damage("pop:fax")
    result = invoke(store, pop, "add", "fax", "--check-interval", "600")
    assert isinstance(result.exception, UsageError)
    assert "pop:fax is damaged" in str(result.exception)
    full = (
        "--server", "pop.example", "--port", "995", "--security", "tls", "--check-interval",
        "600", "--auth", "none", "--deliver-to", "/var/spool/fax",
    )  # fmt: skip
    result = invoke(store, pop, "add", "fax", *full)
    assert result.exit_code == 0, result.output
    assert store.pops["fax"].check_interval == 600


def test_damaged_records_can_be_removed(store: DamagedStore) -> None:
    store.damage("pop:fax")
    result = invoke(store, pop, "remove", "fax", "--yes")
    assert result.exit_code == 0, result.output
    assert result.output == "POP setting fax removed.\n"
    store.smtp = None
    store.damage("provider:as")
    result = invoke(store, provider_group, "remove", "as")
    assert result.exit_code == 0, result.output
    assert store.providers == {}
    assert asyncio.run(store.damaged_records()) == []


def test_export_writes_the_intact_settings_and_names_the_damaged(store: DamagedStore) -> None:
    store.damage("smtp")
    result = invoke(store, config, "export")
    assert result.exit_code == 1
    assert "[pop.fax]" in result.stdout
    assert "[smtp]" not in result.stdout
    assert "smtp is damaged: smtp cannot be read" in result.stderr


def test_lists_name_the_damaged_records_on_stderr(store: DamagedStore) -> None:
    store.damage("pop:fax")
    result = invoke(store, pop, "list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "pop:fax is damaged" in result.stderr
