"""What `tokenpost serve` runs: the token schedule, the POP schedules, alerts and health lines,
in one asyncio process, until asked to stop.

Stopping is graceful: after the stop signal no loop starts new work, and work in flight (a
refresh whose rotated refresh token must reach the store, a message between RETR and DELE) is
given `grace` seconds to finish before it is cancelled. Cancelling is safe too, only slower to
heal: a refresh is persisted before it is used, a message is deleted on the server only after it
is durable, and the next run completes what a cancelled one left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from tokenpost.clock import Clock
from tokenpost.i18n import state_label
from tokenpost.isotime import iso_utc
from tokenpost.services.alerts import Alerter
from tokenpost.services.receive import Receiver
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.status import SettingStatus
from tokenpost.services.status_cache import StatusCache
from tokenpost.settings.model import PopSetting
from tokenpost.text import Text, as_text

log = logging.getLogger("tokenpost.serve")

DEFAULT_HEALTH_INTERVAL_S: Final = 300.0
# New or changed POP settings are picked up at least this often.
RECEIVE_RESCAN_S: Final = 30.0
# A loop whose pass failed tries again after this long.
RETRY_AFTER_FAILURE_S: Final = 30.0
DEFAULT_GRACE_S: Final = 20.0


@dataclass
class Daemon:
    status: StatusCache  # the health pass's reads: the store is read again only after a change
    clock: Clock
    scheduler: Scheduler
    receiver: Receiver
    alerter: Alerter
    allow_plaintext: bool = False
    health_interval: float = DEFAULT_HEALTH_INTERVAL_S
    grace: float = DEFAULT_GRACE_S
    retry_after_failure: float = RETRY_AFTER_FAILURE_S

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until `stop` is set, then finish or cancel in-flight work."""
        log.info("service started")
        loops = [
            asyncio.create_task(self.alerter.run(stop), name="alerts"),
            asyncio.create_task(
                self._every(
                    stop, "tokens", lambda: self.scheduler.tick(stop), wake=self.scheduler.wakeup
                )
            ),
            asyncio.create_task(self._every(stop, "receive", lambda: self._receive_due(stop))),
            asyncio.create_task(self._every(stop, "health", self._health)),
        ]
        try:
            await stop.wait()
            log.info("stopping: finishing work in flight (at most %g s)", self.grace)
            await asyncio.wait(loops, timeout=self.grace)
        finally:
            for task in loops:  # those still running after the grace period
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        log.info("service stopped")

    async def _every(
        self,
        stop: asyncio.Event,
        name: str,
        work: Callable[[], Awaitable[float]],
        *,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Run `work` until `stop`; it returns the seconds until it wants to run again, unless
        `wake` is set meanwhile (new work: run again at once). A failure of one pass is logged
        and the loop goes on: the service never dies of one."""
        while not stop.is_set():
            if wake is not None:
                wake.clear()
            try:
                wait = await work()
            except Exception:
                # One broken pass must not end the schedule: log it with its traceback (the
                # redacting filter applies) and try again after a pause.
                log.exception(
                    "the %s loop failed; retrying in %g s", name, self.retry_after_failure
                )
                wait = self.retry_after_failure
            await _first_of(stop, wake, seconds=max(0.05, wait))

    async def _receive_due(self, stop: asyncio.Event) -> float:
        overview = await self.status.overview()  # the store again only after a change
        pops = [s for s in overview.settings if isinstance(s, PopSetting)]
        next_due = await self.receiver.run_due(
            pops, allow_plaintext=self.allow_plaintext, stop=stop
        )
        if next_due is None:
            return RECEIVE_RESCAN_S
        return min(RECEIVE_RESCAN_S, max(0.0, next_due - self.clock.now()))

    async def _health(self) -> float:
        snapshot = await self.status.snapshot(self.clock.now())
        pops = {s.setting_id: s for s in snapshot.settings if isinstance(s, PopSetting)}
        for row in snapshot.rows:
            pop = pops.get(row.setting_id)
            log_health(row, None if pop is None else self.receiver.due_at(pop))
        return self.health_interval


async def _first_of(stop: asyncio.Event, wake: asyncio.Event | None, *, seconds: float) -> None:
    """Wait until `stop` or `wake` is set, or `seconds` have passed."""
    events = [stop] if wake is None else [stop, wake]
    waiting = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)


def log_health(row: SettingStatus, next_check: float | None) -> None:
    """One INFO line per setting, in the log's language, with the setting, the state and the
    times as structured fields (times in ISO 8601 UTC, as `token status --json` writes them)."""
    expires_at = None if row.expires_at is None else iso_utc(row.expires_at)
    next_at = None if next_check is None else iso_utc(next_check)
    shown: Text
    if row.state is not None:
        state = row.state.value
        # The English label is the label's msgid: the line shows it in the log's language.
        shown = Text(state_label(state, "en"))
    else:
        state = f"auth={row.auth}"
        shown = Text.verbatim(state)
    parts = [Text("{setting}: {state}", setting=row.setting_id, state=shown)]
    if expires_at is not None:
        parts.append(Text("expires {when}", when=expires_at))
    if next_at is not None:
        parts.append(Text("next check {when}", when=next_at))
    if row.failures:
        parts.append(Text("refresh failures: {count}", count=row.failures))
    if row.reason:
        parts.append(as_text(row.reason))
    log.info(
        "health %s",
        Text("{parts}", parts=tuple(parts)),  # shown joined by "; "
        extra={
            "setting": row.setting_id,
            "state": state,
            "expires_at": expires_at,
            "next_check": next_at,
        },
    )
