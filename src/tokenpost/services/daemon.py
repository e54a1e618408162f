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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from tokenpost.clock import Clock
from tokenpost.i18n import show
from tokenpost.ports import Store
from tokenpost.services.alerts import Alerter
from tokenpost.services.receive import Receiver
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.status import SettingStatus, status

log = logging.getLogger("tokenpost.serve")

DEFAULT_HEALTH_INTERVAL_S: Final = 300.0
# New or changed POP settings are picked up at least this often.
RECEIVE_RESCAN_S: Final = 30.0
# A loop whose pass failed tries again after this long.
RETRY_AFTER_FAILURE_S: Final = 30.0
DEFAULT_GRACE_S: Final = 20.0


@dataclass
class Daemon:
    store: Store
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
            asyncio.create_task(self._every(stop, "tokens", self.scheduler.tick)),
            asyncio.create_task(self._every(stop, "receive", self._receive_due)),
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
        self, stop: asyncio.Event, name: str, work: Callable[[], Awaitable[float]]
    ) -> None:
        """Run `work` until `stop`; it returns the seconds until it wants to run again. A
        failure of one pass is logged and the loop goes on: the service never dies of one."""
        while not stop.is_set():
            try:
                wait = await work()
            except Exception:
                # One broken pass must not end the schedule: log it with its traceback (the
                # redacting filter applies) and try again after a pause.
                log.exception(
                    "the %s loop failed; retrying in %g s", name, self.retry_after_failure
                )
                wait = self.retry_after_failure
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.05, wait))
            except TimeoutError:
                continue

    async def _receive_due(self) -> float:
        next_due = await self.receiver.run_due(allow_plaintext=self.allow_plaintext)
        if next_due is None:
            return RECEIVE_RESCAN_S
        return min(RECEIVE_RESCAN_S, max(0.0, next_due - self.clock.now()))

    async def _health(self) -> float:
        pops = {p.setting_id: p for p in await self.store.list_pop()}
        for row in await status(self.store):
            pop = pops.get(row.setting_id)
            log_health(row, None if pop is None else self.receiver.due_at(pop))
        return self.health_interval


def log_health(row: SettingStatus, next_check: float | None) -> None:
    """One INFO line per setting, with the state and times as structured fields."""
    state = row.state.value if row.state is not None else f"auth={row.auth.value}"
    parts = [f"{row.setting_id}: {state}"]
    if row.expires_at is not None:
        parts.append(f"expires {_iso(row.expires_at)}")
    if next_check is not None:
        parts.append(f"next check {_iso(next_check)}")
    if row.failures:
        parts.append(f"{row.failures} refresh failures")
    if row.reason:
        parts.append(show(row.reason))
    log.info(
        "health %s",
        "; ".join(parts),
        extra={
            "setting": row.setting_id,
            "state": state,
            "expires_at": row.expires_at,
            "next_check": next_check,
        },
    )


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
