"""Times as tokenpost writes them for programs: ISO 8601 in UTC with a ``Z``, whole seconds
(``2026-12-03T10:00:00Z``).

One format wherever a program reads a time: `token status --json`, the fields of `serve`'s JSON
log (``expires_at``, ``next_check``), the alert hook's ``TOKENPOST_TIME``. Times are stored as
seconds since the epoch (`clock.Clock.now`); this is the only place they become text for
programs. Sentences for people format times their own way.
"""

from __future__ import annotations

import time


def iso_utc(when: float) -> str:
    """`when` (seconds since the epoch) as ``YYYY-MM-DDTHH:MM:SSZ``; fractions of a second are
    dropped, so a time never shows as later than it is."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
