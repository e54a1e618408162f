"""Time as a parameter. Cores take `now` (seconds since the epoch); services take a `Clock`."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for expiries that outlive the process; monotonic time for waits inside it."""

    def now(self) -> float:
        """Seconds since the epoch (UTC); what expiry times are stored in."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait; a fake clock advances instead."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
