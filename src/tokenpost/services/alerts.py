"""Alerts: the administrator hears about token, receive and store trouble in the log, by mail
and by a hook command.

Theory of operation. Services report what happens through an `EventHook` (event name, setting id,
detail; the names are `events.EVENTS`). `Alerter.on_event` is that hook: it writes the event's one
log line (`events.log_event`) and puts the event on a bounded queue, so a service never waits
for a command or a mail server. `run()` (the consumer task of `tokenpost serve`) and `drain()`
(one-shot commands, before they exit) take events off the queue in order and, for each one:

1. run the administrator's hook command, if one is set, with the event as arguments and
   environment variables (`AlertSettings.hook`);
2. send an alert mail to `AlertSettings.recipients` through the SMTP setting when the event is
   one the administrator must act on: a token became Invalid; refreshing has failed for at least
   `refresh_failing_after` seconds; receiving has failed for at least `receive_failing_after`; a
   refreshed token cannot be stored (`store_unwritable`, which the refresh service emits once per
   episode: the token is kept in memory, so the mail can still go out through the SMTP setting).

Refresh failures are noticed by `check_refresh()`, which `run()` calls every `check_every`
seconds: it reads `Acquired.failing_since` of every OAuth 2.0 setting (from `overview`, in
`serve` the status cache: the store is read again only after a change) and emits
`refresh_failing` once per run of failures (a run ends when a refresh succeeds). Receive
failures are counted from the first `receive_failed` of a POP setting until `receive_recovered`;
the alert goes out with the first failure seen after the threshold, once per episode. Episodes
live in memory: a restarted `serve` may alert once more for a trouble that is still going on.

A mail that cannot be sent (the SMTP token is itself invalid or unavailable, the server refuses,
a timeout) is logged as one WARNING line with its subject and the reason, and not retried: the
hook has already run, and retrying against a broken SMTP setting would only add load.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from tokenpost.clock import Clock
from tokenpost.errors import OperationError, TokenpostError
from tokenpost.isotime import iso_utc
from tokenpost.ports import CommandRunner, Store
from tokenpost.services.alert_mails import (
    invalid_mail,
    receive_failing_mail,
    refresh_failing_mail,
    store_unwritable_mail,
)
from tokenpost.services.events import EVENTS, log_event
from tokenpost.services.status import Overview, read_overview
from tokenpost.settings.model import AlertSettings, AuthMethod, MailSetting
from tokenpost.text import Text, as_text
from tokenpost.tokens.state import Acquired, in_force

log = logging.getLogger("tokenpost.alerts")

__all__ = ["EVENTS", "Alerter", "SendAlert"]

SendAlert = Callable[[Sequence[str], str, str], Awaitable[None]]
"""Sends one alert mail: (recipients, subject, body). Raises TokenpostError when it cannot."""

HOOK_TIMEOUT: Final = 30.0
SEND_TIMEOUT: Final = 120.0
CHECK_EVERY: Final = 60.0
QUEUE_LIMIT: Final = 1000
_OUTPUT_EXCERPT: Final = 200


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    setting_id: str
    detail: Text  # shown in the alert mail's language; the hook gets it in English
    at: float  # when it was reported, not when it was handled


@dataclass
class _Episode:
    """A POP setting's receive failures since the first one; `alerted` once mailed."""

    since: float
    alerted: bool = False


@dataclass
class Alerter:
    store: Store
    clock: Clock
    runner: CommandRunner
    send_alert: SendAlert
    lang: str = "en"
    hook_timeout: float = HOOK_TIMEOUT
    send_timeout: float = SEND_TIMEOUT
    check_every: float = CHECK_EVERY
    queue_limit: int = QUEUE_LIMIT
    # Every setting and token, read again only after a change (`StatusCache.overview`); None
    # reads them at each check, in one query per kind of record.
    overview: Callable[[], Awaitable[Overview]] | None = None
    _queue: asyncio.Queue[_Event] = field(init=False)
    _dropped: int = field(default=0, init=False)
    _receive: dict[str, _Episode] = field(default_factory=dict, init=False)
    _refresh_alerted: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_limit)

    def on_event(self, event: str, setting_id: str, detail: object) -> None:
        """The services' EventHook: write the event's log line, enqueue the event and return at
        once (never waits, never raises). `detail`: a string, a `Text` or an error."""
        log_event(event, setting_id, detail)
        try:
            self._queue.put_nowait(_Event(event, setting_id, as_text(detail), self.clock.now()))
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1:  # once per overflow, not once per dropped event
                log.warning("alert queue full: dropping events (first: %s %s)", event, setting_id)
            return
        if self._dropped:
            log.warning("alert queue: %d events were dropped", self._dropped)
            self._dropped = 0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Handle events as they come and check refresh failures periodically, until `stop` is
        set (an event being handled is finished first) or the task is cancelled."""
        stop = stop or asyncio.Event()
        next_check = 0.0
        while not stop.is_set():
            if self.clock.now() >= next_check:
                await self.check_refresh()
                next_check = self.clock.now() + self.check_every
            event = await self._next_event(stop, max(0.0, next_check - self.clock.now()))
            if event is not None:
                await self._handle(event)

    async def _next_event(self, stop: asyncio.Event, timeout: float) -> _Event | None:  # noqa: ASYNC109
        """The next queued event, or None when `timeout` passed or `stop` was set first."""
        getter = asyncio.ensure_future(self._queue.get())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        if getter in done:
            return getter.result()
        # A cancelled get() leaves its item in the queue, for the next call or `drain()`.
        getter.cancel()
        return None

    async def drain(self) -> None:
        """Handle every queued event now (one-shot commands call this before exiting)."""
        while not self._queue.empty():
            await self._handle(self._queue.get_nowait())

    async def check_refresh(self) -> None:
        """Emit `refresh_failing` for each token whose refreshing has failed long enough,
        once per run of failures."""
        try:
            alerts = await self.store.get_alerts()
            overview = await (self.overview or self._read_overview)()
        except TokenpostError as error:
            log.warning("alerts: cannot read the settings: %s", error)
            return
        now = self.clock.now()
        for setting in overview.settings:
            if setting.auth is not AuthMethod.OAUTH2:
                continue
            state = _in_force(overview, setting)
            setting_id = setting.setting_id
            if not isinstance(state, Acquired) or state.failing_since is None:
                self._refresh_alerted.pop(setting_id, None)
                continue
            if now - state.failing_since < alerts.refresh_failing_after:
                continue
            if self._refresh_alerted.get(setting_id) == state.failing_since:
                continue
            self._refresh_alerted[setting_id] = state.failing_since
            self.on_event("refresh_failing", setting_id, str(state.last_error or ""))

    # -- one event -----------------------------------------------------------------------------

    async def _handle(self, event: _Event) -> None:
        try:
            alerts = await self.store.get_alerts()
        except TokenpostError as error:
            log.warning("alerts: cannot read the alert settings: %s", error)
            return
        await self._run_hook(alerts, event)
        mail = self._mail_for(alerts, event)
        if mail is not None and alerts.recipients:
            await self._send(alerts.recipients, event, *mail)

    async def _run_hook(self, alerts: AlertSettings, event: _Event) -> None:
        if not alerts.hook:
            return
        detail = str(event.detail)  # English: what scripts match on does not change with --lang
        try:
            argv = [*shlex.split(alerts.hook), event.name, event.setting_id, detail]
        except ValueError as error:
            log.warning("alert hook not run: cannot split the command: %s", error)
            return
        env = {
            "TOKENPOST_EVENT": event.name,
            "TOKENPOST_SETTING": event.setting_id,
            "TOKENPOST_DETAIL": detail,
            "TOKENPOST_TIME": iso_utc(event.at),
        }
        try:
            result = await self.runner.run(argv, timeout=self.hook_timeout, env=env)
        except OperationError as error:
            log.warning("alert hook for %s %s: %s", event.name, event.setting_id, error)
            return
        if result.returncode is None:
            log.warning(
                "alert hook for %s %s was stopped after %g s",
                event.name,
                event.setting_id,
                self.hook_timeout,
            )
        elif result.returncode != 0:
            log.warning(
                "alert hook for %s %s exited with %d: %s",
                event.name,
                event.setting_id,
                result.returncode,
                _last_line(result.output),
            )

    def _mail_for(self, alerts: AlertSettings, event: _Event) -> tuple[str, str] | None:
        """The alert mail (subject, body) `event` calls for, with the episode bookkeeping."""
        match event.name:
            case "token_invalid":
                return invalid_mail(self.lang, event.setting_id, event.detail)
            case "refresh_failing":
                since = self._refresh_alerted.get(event.setting_id, event.at)
                return refresh_failing_mail(
                    self.lang, event.setting_id, event.detail, since=since, now=event.at
                )
            case "receive_failed":
                return self._receive_failed(alerts, event)
            case "store_unwritable":
                return store_unwritable_mail(self.lang, event.setting_id, event.detail)
            case "receive_recovered":
                self._receive.pop(event.setting_id, None)
        return None

    def _receive_failed(self, alerts: AlertSettings, event: _Event) -> tuple[str, str] | None:
        episode = self._receive.setdefault(event.setting_id, _Episode(since=event.at))
        if episode.alerted or event.at - episode.since < alerts.receive_failing_after:
            return None
        episode.alerted = True
        return receive_failing_mail(
            self.lang, event.setting_id, event.detail, since=episode.since, now=event.at
        )

    async def _send(
        self, recipients: Sequence[str], event: _Event, subject: str, body: str
    ) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await self.send_alert(recipients, subject, body)
        except TimeoutError:
            log.warning("alert not mailed (%s): no answer in %g s", subject, self.send_timeout)
        except TokenpostError as error:
            log.warning("alert not mailed (%s): %s", subject, error)
        else:
            log.info("alert mailed for %s %s", event.name, event.setting_id)

    # -- reading -------------------------------------------------------------------------------

    async def _read_overview(self) -> Overview:
        return await read_overview(self.store)


def _in_force(overview: Overview, setting: MailSetting) -> Acquired | None:
    """The token of `setting` that is in force, if it is an Acquired one."""
    try:
        state = overview.current(setting).state
    except TokenpostError as error:
        log.debug("alerts: %s: %s", setting.setting_id, error)
        return None
    return in_force(state)  # a pending re-authorization keeps a token that can fail


def _last_line(output: str) -> str | Text:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1][:_OUTPUT_EXCERPT] if lines else Text("(no output)")
