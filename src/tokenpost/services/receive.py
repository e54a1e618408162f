"""Receiving: each POP setting's mail into its delivery folder, never lost, never twice.

Theory of operation. One run of a setting: check the encryption policy, open the setting's drop
(held exclusively: one run per setting and folder at a time) and let it finish what a killed run
left, connect, authenticate, list the maildrop with UIDL, and for every message:

- not yet delivered: RETR streamed into the drop and committed (stored, attachments
  extracted), then DELE unless the setting leaves mail on the server;
- already delivered (a UIDL the drop knows): DELE unless leaving mail on the server, never
  fetched again. This is also how a run killed between storing and QUIT heals.

Then the drop is synced (everything committed becomes durable, UIDLs recorded) and QUIT commits
the deletions; a session that ends any other way deletes nothing. Since the server deletes only
messages the drop holds durably, a kill at any point loses nothing, and since a UIDL the drop
knows is never fetched again, nothing arrives twice. A connection dropped mid-RETR
discards that message (it is fetched again next time); the ones before it stay delivered.

The setting's command runs for each delivered message after the session (the POP server is not
kept waiting on a printer). It is owed from the moment the message is recorded as delivered, so
a killed run leaves it owed and the next run runs it, at least once (`services.receive_commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from tokenpost import sasl
from tokenpost.clock import Clock
from tokenpost.errors import DeliveryError, RemoteProtocolError, TokenpostError, UsageError
from tokenpost.ports import (
    CommandRunner,
    DeliveredMessage,
    MailDrop,
    MailDropOpener,
    Pop3Connector,
    Pop3Session,
    SettingsStore,
)
from tokenpost.secret import Secret
from tokenpost.services.bounded import run_bounded
from tokenpost.services.mailauth import authenticate_with_refresh, require_encryption
from tokenpost.services.receive_commands import CommandTally, run_owed
from tokenpost.services.refresh import EventHook, Refresher, ignore_event
from tokenpost.services.targets import load_setting
from tokenpost.settings.model import POP_PREFIX, AuthMethod, PopSetting
from tokenpost.text import Text

log = logging.getLogger("tokenpost.receive")

RECEIVE_FAILED: Final = "receive_failed"
RECEIVE_RECOVERED: Final = "receive_recovered"
DEFAULT_COMMAND_TIMEOUT_S: Final = 300.0
DEFAULT_TIMEOUT_S: Final = 60.0


@dataclass
class SettingReport:
    """What one run of one setting did. `deleted` counts deletions the server committed."""

    setting_id: str
    fetched: int = 0  # delivered in this run
    skipped: int = 0  # on the server, delivered before
    deleted: int = 0
    failed: int = 0  # could not be delivered; they stay on the server
    recovered: int = 0  # stored by an interrupted run, recorded by this one
    commands_run: int = 0  # ran to an end (this run's messages and those owed before)
    commands_failed: int = 0  # ended with a non-zero status or at the timeout, or did not start
    commands_owed: int = 0  # still owed after this run: the command could not be started
    error: Text | None = None  # why receiving failed (a command's failure is not one)

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed == 0 and self.commands_failed == 0


@dataclass(frozen=True, slots=True)
class ReceiveReport:
    settings: tuple[SettingReport, ...]

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.settings)


@dataclass
class Receiver:
    store: SettingsStore
    connector: Pop3Connector
    open_drop: MailDropOpener
    commands: CommandRunner
    refresher: Refresher
    clock: Clock
    on_event: EventHook = ignore_event
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT_S
    timeout: float = DEFAULT_TIMEOUT_S
    concurrency: int = 32  # due settings checked at once by `run_due`, in all
    per_server: int = 8  # and of one POP server
    _last_run: dict[str, float] = field(default_factory=dict, init=False)
    _failing: set[str] = field(default_factory=set, init=False)

    async def receive(
        self, setting_name: str | None = None, *, allow_plaintext: bool = False
    ) -> ReceiveReport:
        """One run of the named POP setting (``fax`` or ``pop:fax``), or of every POP setting.

        Raises:
            NotFoundError: no POP setting has that name.
        """
        settings = await self._settings(setting_name)
        reports = [await self.receive_setting(s, allow_plaintext=allow_plaintext) for s in settings]
        return ReceiveReport(tuple(reports))

    def due_at(self, setting: PopSetting) -> float:
        """When the setting is next due: its check interval after its last run, now if never."""
        last = self._last_run.get(setting.setting_id)
        return self.clock.now() if last is None else last + setting.check_interval

    def _due(self, setting: PopSetting, now: float) -> bool:
        last = self._last_run.get(setting.setting_id)
        return last is None or last + setting.check_interval <= now

    async def run_due(
        self,
        settings: list[PopSetting] | None = None,
        *,
        allow_plaintext: bool = False,
        stop: asyncio.Event | None = None,
    ) -> float | None:
        """For the scheduler: run every POP setting of `settings` (None: read them) that is
        due, at most `concurrency` at once and `per_server` of one server; returns when the next
        one is due (None: there are no POP settings). Once `stop` is set no other setting
        starts: only the runs in flight are finished, so a stop keeps its grace at any number of
        settings."""
        if settings is None:
            settings = await self.store.list_pop()
        now = self.clock.now()

        async def run(setting: PopSetting) -> None:
            await self.receive_setting(setting, allow_plaintext=allow_plaintext)

        await run_bounded(
            [s for s in settings if self._due(s, now)],
            run,
            peer=lambda setting: setting.server.lower(),
            concurrency=self.concurrency,
            per_peer=self.per_server,
            stop=stop,
        )
        return min((self.due_at(s) for s in settings), default=None)

    async def receive_setting(
        self, setting: PopSetting, *, allow_plaintext: bool = False
    ) -> SettingReport:
        """One run of one setting. Failures are in the report (and the events), not raised."""
        report = SettingReport(setting.setting_id)
        try:
            await self._run(setting, report, allow_plaintext)
        except TokenpostError as error:
            report.error = error.as_text()
        finally:
            self._last_run[setting.setting_id] = self.clock.now()
        self._announce(report)
        return report

    async def _settings(self, name: str | None) -> list[PopSetting]:
        if name is None:
            return sorted(await self.store.list_pop(), key=lambda s: s.name)
        setting = await load_setting(self.store, POP_PREFIX + name.removeprefix(POP_PREFIX))
        assert isinstance(setting, PopSetting)  # noqa: S101 - a pop: id loads a PopSetting
        return [setting]

    async def _run(self, setting: PopSetting, report: SettingReport, allow_plaintext: bool) -> None:
        require_encryption(
            setting.security, setting.server, setting.auth, allow_plaintext=allow_plaintext
        )
        async with self.open_drop(setting) as drop:
            report.recovered = len(await drop.recover())
            try:
                await self._session(setting, drop, report)
            except TokenpostError as error:
                report.error = error.as_text()
            try:
                await drop.sync()  # what a failed session stored: its commands become owed
            except DeliveryError as error:
                report.error = report.error or error.as_text()
            tally = CommandTally()
            try:
                await run_owed(setting, drop, self.commands, tally, timeout=self.command_timeout)
            finally:
                report.commands_run = tally.ran
                report.commands_failed = tally.failed
                report.commands_owed = tally.owed

    async def _session(self, setting: PopSetting, drop: MailDrop, report: SettingReport) -> None:
        if setting.auth is AuthMethod.OAUTH2:
            # No usable token: no connection (TokenUnavailableError says what to do); what is
            # owed locally (the commands of stored messages) still runs.
            await self.refresher.access_token(setting.setting_id)
        session = await self.connector.connect(setting, timeout=self.timeout)
        try:
            await authenticate_pop(session, setting, self.refresher, self.clock)
            marked = await self._transfer(session, setting, drop, report)
            await drop.sync()  # QUIT deletes: only what is durable
            await session.quit()
            report.deleted = marked
        finally:
            await session.close()

    async def _transfer(
        self, session: Pop3Session, setting: PopSetting, drop: MailDrop, report: SettingReport
    ) -> int:
        """Fetch what is new, mark what is delivered for deletion; returns how many are marked.
        A message that cannot be stored ends the fetching (the disk is full or unwritable), but
        the session still quits to commit the deletions marked so far.

        Each message is made durable (fsync, rename) in a worker thread while the next one is
        being fetched; its DELE follows only once that has finished (DESIGN invariant 4).
        """
        listing = _usable(await _unique_ids(session, setting), report)
        marked = 0
        durable: _Durable | None = None  # the previous message, being made durable
        try:
            for number, uidl in sorted(listing.items()):
                if drop.delivered(uidl):
                    report.skipped += 1
                    marked += await _mark(session, setting, number)
                    continue
                delivery = await drop.begin(uidl)
                try:
                    await session.retrieve(number, delivery.write)
                    previous, durable = durable, None
                    if previous is not None:
                        marked += await _settle(previous, session, setting, report)
                except BaseException:
                    delivery.discard()
                    raise
                durable = _Durable(number, asyncio.ensure_future(delivery.commit()))
            previous, durable = durable, None
            if previous is not None:
                marked += await _settle(previous, session, setting, report)
        except DeliveryError as error:
            report.failed += 1
            report.error = error.as_text()
        finally:
            if durable is not None:
                # The session failed while the previous message was being made durable: it is
                # delivered (its DELE waits for the next run, which finds it delivered).
                with contextlib.suppress(DeliveryError):
                    await durable.commit
                    report.fetched += 1
        return marked

    def _announce(self, report: SettingReport) -> None:
        setting_id = report.setting_id
        if report.error is not None:
            self._failing.add(setting_id)
            self.on_event(RECEIVE_FAILED, setting_id, report.error)  # its log line: events.py
            return
        log.info(
            "%s: %d fetched, %d deleted, %d delivered before, %d commands run",
            setting_id,
            report.fetched,
            report.deleted,
            report.skipped,
            report.commands_run,
        )
        if setting_id in self._failing:
            self._failing.discard(setting_id)
            self.on_event(RECEIVE_RECOVERED, setting_id, "")


@dataclass(frozen=True, slots=True)
class _Durable:
    """A fetched message whose commit (fsync, rename, attachments) runs in a worker thread."""

    number: int
    commit: asyncio.Future[DeliveredMessage]


async def _settle(
    durable: _Durable, session: Pop3Session, setting: PopSetting, report: SettingReport
) -> int:
    """Wait until the message is durable, then mark it for deletion; returns 1 if marked.

    Raises:
        DeliveryError: it could not be stored; it stays on the server.
    """
    await durable.commit
    report.fetched += 1
    return await _mark(session, setting, durable.number)


async def _mark(session: Pop3Session, setting: PopSetting, number: int) -> int:
    """DELE a delivered message unless the setting leaves messages on the server."""
    if setting.leave_on_server:
        return 0
    await session.delete(number)
    return 1


async def _unique_ids(session: Pop3Session, setting: PopSetting) -> dict[int, str]:
    """UIDL, which receiving cannot do without: message numbers change between sessions."""
    if session.capabilities and "UIDL" not in session.capabilities:
        raise RemoteProtocolError(
            "{server} does not support UIDL, which receiving needs to never fetch a message"
            " twice. Use a POP3 server that offers UIDL (RFC 1939).",
            server=setting.server,
        )
    return await session.uidl()


def _usable(listing: dict[int, str], report: SettingReport) -> dict[int, str]:
    """The listing without messages that share a UIDL (a broken server): those stay on the
    server untouched, since deleting one of them could delete a message never fetched."""
    counts = Counter(listing.values())
    shared = {number for number, uidl in listing.items() if counts[uidl] > 1}
    if shared:
        report.failed += len(shared)
        report.error = Text(
            "the server gave {count} messages a shared UIDL; they stay there. Report the fault"
            " to the mail server's administrator.",
            count=len(shared),
        )
    return {number: uidl for number, uidl in listing.items() if number not in shared}


# --- Authentication (shared with the connection test) -----------------------------------------


def sasl_mechanisms(capabilities: Iterable[str]) -> frozenset[str]:
    """The SASL mechanisms in CAPA tags (``SASL XOAUTH2`` or ``SASL PLAIN XOAUTH2``)."""
    found: set[str] = set()
    for tag in capabilities:
        words = tag.upper().split()
        if words[:1] == ["SASL"]:
            found.update(words[1:])
    return frozenset(found)


def pop_oauth_mechanism(capabilities: Iterable[str]) -> str:
    """XOAUTH2, which every OAuth POP server takes (Exchange offers nothing else); OAUTHBEARER
    only when the server advertises it and not XOAUTH2."""
    mechanisms = sasl_mechanisms(capabilities)
    if "OAUTHBEARER" in mechanisms and "XOAUTH2" not in mechanisms:
        return "OAUTHBEARER"
    return "XOAUTH2"


async def authenticate_pop(
    session: Pop3Session, setting: PopSetting, refresher: Refresher, clock: Clock
) -> None:
    """Authenticate per `setting.auth`: OAuth 2.0 by XOAUTH2 or OAUTHBEARER (refreshing once when
    a stale token is refused), a password by USER/PASS (SASL PLAIN when the server has no USER),
    or APOP.

    Raises:
        MailAuthError (MailPolicyError), TokenUnavailableError, TransportError,
        RemoteProtocolError, UsageError (an incomplete setting).
    """
    if setting.auth is AuthMethod.NONE:
        return
    account = setting.account
    if not account:
        raise UsageError(
            "{setting}: auth {auth} needs an account: set it with"
            " 'tokenpost pop add {name} --account ADDRESS'",
            setting=setting.setting_id,
            auth=setting.auth.value,
            name=setting.name,
        )
    if setting.auth is AuthMethod.OAUTH2:
        mechanism = pop_oauth_mechanism(session.capabilities)

        async def attempt(token: Secret) -> None:
            if mechanism == "OAUTHBEARER":
                client = sasl.oauthbearer(account, token, setting.server, setting.port)
            else:
                client = sasl.xoauth2(account, token)
            await session.authenticate(client)

        await authenticate_with_refresh(refresher, clock, setting.setting_id, attempt)
        return
    password = setting.password
    if password is None:
        raise UsageError(
            "{setting}: auth {auth} needs a password: set it with"
            " 'tokenpost pop add {name} --password -'",
            setting=setting.setting_id,
            auth=setting.auth.value,
            name=setting.name,
        )
    if setting.auth is AuthMethod.APOP:
        if session.apop_timestamp is None:
            raise RemoteProtocolError(
                "{server} does not offer APOP (no timestamp in its greeting): use"
                " 'tokenpost pop add {name} --auth password'",
                server=setting.server,
                name=setting.name,
            )
        await session.apop(account, password)
    elif "USER" not in session.capabilities and "PLAIN" in sasl_mechanisms(session.capabilities):
        await session.authenticate(sasl.plain(account, password))
    else:
        await session.login(account, password)
