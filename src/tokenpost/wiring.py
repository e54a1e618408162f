"""The composition root: the one place adapters are built and handed to services.

Every entry point (CLI commands, `serve`) opens an `App` with `open_app` and closes it when done.
Imports of adapters happen here, lazily, so a command pays only for what it uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tokenpost.clock import Clock, SystemClock
from tokenpost.ports import FlightLock, HttpClient, Store
from tokenpost.services.authorize import Authorizer
from tokenpost.services.deletion import Deleter
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.refresh import EventHook, Refresher
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.settings import SettingsService


@dataclass
class App:
    """Built services for one process."""

    home: Path
    store: Store
    http: HttpClient
    lock: FlightLock
    clock: Clock
    resolver: EndpointResolver
    settings: SettingsService
    refresher: Refresher
    authorizer: Authorizer
    deleter: Deleter

    def scheduler(self) -> Scheduler:
        return Scheduler(self.store, self.clock, self.refresher, self.authorizer)


def _log_event(event: str, setting_id: str, detail: str) -> None:
    import logging

    logging.getLogger("tokenpost.events").info(
        "%s %s%s", event, setting_id, f": {detail}" if detail else ""
    )


@asynccontextmanager
async def open_app(
    home: Path | None,
    environ: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_event: EventHook = _log_event,
) -> AsyncIterator[App]:
    """Open the home, its store and an HTTP client; close them on exit.

    Raises:
        HomeError, KeyFileError, StoreCorruptError: the home or store cannot be used.
    """
    from tokenpost.adapters.flight_lock import FileFlightLock
    from tokenpost.adapters.home import open_home
    from tokenpost.adapters.http_httpx import HttpxClient
    from tokenpost.adapters.loopback import open_redirect_listener
    from tokenpost.adapters.sql_store import open_store

    opened = open_home(home, environ)
    store = await open_store(opened, url=environ.get("TOKENPOST_STORE_URL") or None)
    try:
        async with HttpxClient() as http:
            clock = clock or SystemClock()
            lock = FileFlightLock(opened.lock_dir)
            resolver = EndpointResolver(http)
            yield App(
                home=opened.path,
                store=store,
                http=http,
                lock=lock,
                clock=clock,
                resolver=resolver,
                settings=SettingsService(store, lock),
                refresher=Refresher(store, http, lock, clock, resolver, on_event=on_event),
                authorizer=Authorizer(
                    store, http, lock, clock, resolver, open_redirect_listener, on_event=on_event
                ),
                deleter=Deleter(store, http, lock, clock, resolver, on_event=on_event),
            )
    finally:
        await store.close()
