"""The composition root: the one place adapters are built and handed to services.

Every entry point (CLI commands, `serve`) opens an `App` with `open_app` and closes it when done;
a command that only reads settings and tokens (`token status`) opens just a store with
`open_reader`. Imports of adapters and services happen here, lazily, so a command pays only for
what it uses.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenpost.account_ports import AccountStore
    from tokenpost.adapters.delivered import DeliveredMessage
    from tokenpost.adapters.home import Home
    from tokenpost.clock import Clock
    from tokenpost.ports import FlightLock, FlowOwners, HttpClient, Store
    from tokenpost.services.accounts import Accounts
    from tokenpost.services.alerts import Alerter
    from tokenpost.services.authorize import Authorizer
    from tokenpost.services.check import Checker
    from tokenpost.services.deletion import Deleter
    from tokenpost.services.endpoints import EndpointResolver
    from tokenpost.services.receive import Receiver
    from tokenpost.services.refresh import EventHook, Refresher
    from tokenpost.services.scheduler import Scheduler
    from tokenpost.services.send import Sender
    from tokenpost.services.settings import SettingsService
    from tokenpost.services.status import Overview
    from tokenpost.services.status_cache import StatusCache


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
    alerter: Alerter  # every service's events go to it too; `serve` runs `alerter.run()`
    account_store: AccountStore  # web accounts and API tokens: the same store (`SqlStore`)
    # TOKENPOST_CA_FILE, checked when the app opened: the CA file of every provider and mail
    # setting without a --ca-file of its own (None: the system trust store).
    home_ca_file: str | None = None

    @functools.cached_property
    def accounts(self) -> Accounts:
        """Web accounts and API tokens (argon2id password hashes): one per App."""
        from tokenpost.adapters.argon2_hasher import Argon2Hasher
        from tokenpost.services.accounts import Accounts

        return Accounts(self.account_store, Argon2Hasher(), self.clock)

    @functools.cached_property
    def status_cache(self) -> StatusCache:
        """Every setting's status, read again only when the store changed: one per App."""
        from tokenpost.services.status_cache import StatusCache

        return StatusCache(self.store, self.authorizer.owners)

    def checker(self, lang: str = "en") -> Checker:
        """The connection test over the same connectors sending and receiving use."""
        from tokenpost.adapters.pop3_client import Pop3ClientConnector
        from tokenpost.adapters.smtp_client import AioSmtpConnector
        from tokenpost.services.check import Checker

        return Checker(
            self.store,
            self.refresher,
            self.clock,
            AioSmtpConnector(home_ca_file=self.home_ca_file),
            Pop3ClientConnector(home_ca_file=self.home_ca_file),
            lang=lang,
            home_ca_file=self.home_ca_file,
        )

    async def send_alert(self, recipients: Sequence[str], subject: str, body: str) -> None:
        """One alert mail through the SMTP setting (the Alerter's `send_alert`)."""
        from tokenpost.mime import Draft

        await self.sender().send(Draft(to=tuple(recipients), subject=subject, body=body))

    def scheduler(self) -> Scheduler:
        from tokenpost.services.scheduler import Scheduler

        return Scheduler(self.store, self.clock, self.refresher, self.authorizer)

    def receiver(self) -> Receiver:
        """The receive service. Build one per process: it keeps each setting's last run (for
        `due_at`) and which settings are failing (for `receive_recovered`)."""
        from tokenpost.adapters.commands import SubprocessRunner
        from tokenpost.adapters.maildir import open_maildir
        from tokenpost.adapters.pop3_client import Pop3ClientConnector
        from tokenpost.services.receive import Receiver

        return Receiver(
            self.store,
            Pop3ClientConnector(home_ca_file=self.home_ca_file),
            open_maildir,
            SubprocessRunner(),
            self.refresher,
            self.clock,
            on_event=self.refresher.on_event,
        )

    def sender(self) -> Sender:
        """The send service over aiosmtplib: `async with app.sender().session() as outbox`."""
        from tokenpost.adapters.smtp_client import AioSmtpConnector
        from tokenpost.services.send import Sender

        connector = AioSmtpConnector(home_ca_file=self.home_ca_file)
        return Sender(self.store, self.refresher, self.clock, connector)

    async def delivered(self, folder: str, limit: int = 20) -> list[DeliveredMessage]:
        """The newest messages a POP setting stored in its `deliver_to` folder (name, size,
        subject, attachment names), newest first; read off the event loop."""
        import asyncio

        from tokenpost.adapters.delivered import list_delivered

        return await asyncio.to_thread(list_delivered, Path(folder), limit)


TEST_HINT_AFTER_VARIABLE = "TOKENPOST_TEST_REDIRECT_HINT_AFTER"
"""For tests only: seconds before the browser flow's first hint (`browser_wait`), instead of a
minute, so that a test sees it without waiting that long. Not for administrators."""


def _redirect_hint_after(environ: Mapping[str, str]) -> float:
    from tokenpost.services.browser_wait import HINT_AFTER_S

    try:
        seconds = float(environ.get(TEST_HINT_AFTER_VARIABLE, ""))
    except ValueError:
        return HINT_AFTER_S
    return seconds if 0 < seconds < HINT_AFTER_S else HINT_AFTER_S


def _both(first: EventHook, second: EventHook) -> EventHook:
    def hook(event: str, setting_id: str, detail: object) -> None:
        first(event, setting_id, detail)
        second(event, setting_id, detail)

    return hook


@asynccontextmanager
async def open_app(
    home: Path | None,
    environ: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_event: EventHook | None = None,
    writing: bool = True,
) -> AsyncIterator[App]:
    """Open the home, its store and an HTTP client; close them on exit.

    On the console only the home's owner may change something (`adapters.home`): the home of
    another user is refused, unless `writing` is False (a command that only lists or shows),
    and then only while its store needs no creation or upgrade.

    Events go to the app's `Alerter` (one log line each, hook command, alert mail) and to
    `on_event` if given; on exit the events still queued are handled before anything closes,
    unless the work was cancelled. Then the refresher gets a few seconds to save tokens the store
    had refused (`Refresher.close`, which says so on stderr when it cannot), and this process
    stops owning its pending flows.

    The environment is read here, once: TOKENPOST_CA_FILE (checked first: a file that is not a
    CA file stops the command before anything else happens) and the proxy variables.

    Raises:
        UsageError: TOKENPOST_CA_FILE does not name a usable CA file.
        ForeignHomeError: the home belongs to another user (only its owner changes anything).
        HomeError, KeyFileError, StoreCorruptError: the home or store cannot be used.
    """
    from tokenpost.adapters.flow_owners import FileFlowOwners
    from tokenpost.adapters.home import open_home
    from tokenpost.adapters.http_httpx import HttpxClient
    from tokenpost.adapters.proxies import ProxyEnvironment
    from tokenpost.adapters.sql_store import open_store
    from tokenpost.adapters.tls import home_ca_file
    from tokenpost.clock import SystemClock

    ca_file = home_ca_file(environ)
    proxies = ProxyEnvironment.from_environ(environ)
    opened = open_home(home, environ, writing=writing)
    store_url = environ.get("TOKENPOST_STORE_URL") or None
    if opened.foreign_owner is not None and store_url is None:
        await _refuse_unless_current(opened, opened.foreign_owner)
    store = await open_store(opened, url=store_url)
    try:
        async with HttpxClient(home_ca_file=ca_file, proxies=proxies) as http:
            owners = FileFlowOwners(opened.lock_dir)
            app = _assemble(
                _Parts(
                    home=opened,
                    store=store,
                    account_store=store,
                    http=http,
                    lock=_flight_lock(opened.lock_dir, store_url),
                    clock=clock or SystemClock(),
                    owners=owners,
                    home_ca_file=ca_file,
                    lang=_alert_language(environ),
                    redirect_hint_after=_redirect_hint_after(environ),
                ),
                on_event,
            )
            try:
                try:
                    yield app
                except Exception:
                    await app.alerter.drain()
                    raise
                await app.alerter.drain()
            finally:
                # Also when cancelled (Ctrl-C): a held token is saved if the store allows.
                await app.refresher.close()
                owners.close()
    finally:
        await store.close()


async def _refuse_unless_current(home: Home, owner: int) -> None:
    """Another user's SQLite store is only read as it is: one that opening would create or
    upgrade is left to its owner (ForeignHomeError)."""
    from tokenpost.adapters.home import foreign_home
    from tokenpost.adapters.sqlite_reader import open_sqlite_reader

    reader = open_sqlite_reader(home)
    if reader is None:
        raise foreign_home(home.path, owner)
    await reader.close()


def _alert_language(environ: Mapping[str, str]) -> str:
    """The language of alert mail: TOKENPOST_LANG, else the locale (`serve --lang` sets it)."""
    from tokenpost.i18n import resolve_language

    return resolve_language(None, environ)


def _flight_lock(lock_dir: Path, store_url: str | None) -> FlightLock:
    """The home's file lock, and across hosts a PostgreSQL advisory lock on a shared store."""
    from tokenpost.adapters.flight_lock import FileFlightLock

    lock: FlightLock = FileFlightLock(lock_dir)
    if store_url is not None and store_url.startswith("postgresql+psycopg://"):
        from tokenpost.adapters.pg_flight_lock import PgFlightLock

        # Instances on other hosts share the store: one refresh in flight per token across all
        # of them (DESIGN invariant 1). The home's file lock stays the local lock: one host's
        # processes queue on it, then one connection per key per host takes the PostgreSQL
        # advisory lock. Waiting may outlast one slow provider exchange (30 s timeout), hence
        # twice that.
        lock = PgFlightLock(store_url, local=lock, lock_timeout_s=60.0)
    return lock


@dataclass
class _Parts:
    """What `open_app` opened, for `_assemble`."""

    home: Home
    store: Store
    account_store: AccountStore
    http: HttpClient
    lock: FlightLock
    clock: Clock
    owners: FlowOwners
    home_ca_file: str | None
    lang: str
    redirect_hint_after: float


def _assemble(parts: _Parts, on_event: EventHook | None) -> App:
    """The services of one process over the opened parts; every event also reaches the
    Alerter."""
    from tokenpost.adapters.commands import SubprocessRunner
    from tokenpost.adapters.host_checks import FileSystemChecks
    from tokenpost.adapters.loopback import open_redirect_listener
    from tokenpost.services.alerts import Alerter
    from tokenpost.services.authorize import Authorizer
    from tokenpost.services.deletion import Deleter
    from tokenpost.services.endpoints import EndpointResolver
    from tokenpost.services.refresh import Refresher
    from tokenpost.services.settings import SettingsService

    store, http, lock, clock, owners = (
        parts.store,
        parts.http,
        parts.lock,
        parts.clock,
        parts.owners,
    )

    async def send_alert(recipients: Sequence[str], subject: str, body: str) -> None:
        await app.send_alert(recipients, subject, body)

    resolver = EndpointResolver(http)

    async def overview() -> Overview:
        return await app.status_cache.overview()

    alerter = Alerter(
        store, clock, SubprocessRunner(), send_alert, lang=parts.lang, overview=overview
    )
    hook = alerter.on_event if on_event is None else _both(on_event, alerter.on_event)
    deleter = Deleter(store, http, lock, clock, resolver, on_event=hook)
    app = App(
        home=parts.home.path,
        store=store,
        http=http,
        lock=lock,
        clock=clock,
        resolver=resolver,
        settings=SettingsService(
            store, lock, FileSystemChecks(), revoker=deleter, resolver=resolver
        ),
        refresher=Refresher(store, http, lock, clock, resolver, on_event=hook, owners=owners),
        authorizer=Authorizer(
            store,
            http,
            lock,
            clock,
            resolver,
            open_redirect_listener,
            on_event=hook,
            owners=owners,
            redirect_hint_after=parts.redirect_hint_after,
        ),
        deleter=deleter,
        alerter=alerter,
        account_store=parts.account_store,
        home_ca_file=parts.home_ca_file,
    )
    return app  # `send_alert` above reaches the app through this name


def flow_owners(home: Path | None, environ: Mapping[str, str]) -> FlowOwners:
    """The flow owners of the home, for readers (`token status`) that judge pending flows."""
    from tokenpost.adapters.flow_owners import FileFlowOwners
    from tokenpost.adapters.home import open_home

    return FileFlowOwners(open_home(home, environ, writing=False).lock_dir)


def open_fast_reader(home: Path | None, environ: Mapping[str, str]) -> Store | None:
    """The read-only stdlib-sqlite3 reader of the default store, or None where it cannot serve
    (TOKENPOST_STORE_URL set, no store yet, another schema). Its methods never suspend."""
    if environ.get("TOKENPOST_STORE_URL"):
        return None
    from tokenpost.adapters.home import open_home
    from tokenpost.adapters.sqlite_reader import open_sqlite_reader

    return open_sqlite_reader(open_home(home, environ, writing=False))


@asynccontextmanager
async def open_reader(home: Path | None, environ: Mapping[str, str]) -> AsyncIterator[Store]:
    """Open the store for reading only; close it on exit. No HTTP client, lock or services.

    The default SQLite store at the current schema is read with `SqliteReader` (stdlib sqlite3,
    read-only: no SQLAlchemy, no Alembic, no write); its write methods raise UsageError. Any
    other store (TOKENPOST_STORE_URL, a new or an older schema) is opened in full. Another
    user's home is read where the system allows (`adapters.home`), but a SQLite store in it
    that would have to be created or upgraded is left to its owner.

    Raises:
        ForeignHomeError: another user's home whose SQLite store is new or older.
        HomeError, KeyFileError, StoreCorruptError: the home or store cannot be used.
    """
    from tokenpost.adapters.home import foreign_home, open_home

    opened = open_home(home, environ, writing=False)
    url = environ.get("TOKENPOST_STORE_URL") or None
    store: Store | None = None
    if url is None:
        from tokenpost.adapters.sqlite_reader import open_sqlite_reader

        store = open_sqlite_reader(opened)
        if store is None and opened.foreign_owner is not None:
            # Opening it in full would create or upgrade the store: a change, for its owner.
            raise foreign_home(opened.path, opened.foreign_owner)
    if store is None:
        from tokenpost.adapters.sql_store import open_store

        store = await open_store(opened, url=url)
    try:
        yield store
    finally:
        await store.close()
