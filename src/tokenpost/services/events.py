"""Events: what the services report through their `EventHook` (a name, a setting id, a detail),
and the one log line each gets.

A service emits an event and logs nothing of its own about it: the `Alerter`, which every
service's events reach (`wiring.open_app`), writes the event's line with `log_event`. So each
event is one line in the log, in the log's language, with ``event`` and ``setting`` as structured
fields of `serve`'s JSON lines. The detail may be a string, a `Text` or a TokenpostError; it is
shown in the log's language too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from tokenpost.text import N_, Text, as_text

log = logging.getLogger("tokenpost.events")

# The stable event names (hook arguments, TOKENPOST_EVENT, logs). A contract: never rename one.
EVENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "authorization_required": "a device flow waits for the administrator; detail: the "
        "verification address",
        "token_acquired": "a token was obtained (device, browser or app-only flow)",
        "token_refreshed": "a token was refreshed",
        "token_invalid": "a token can no longer be refreshed and must be obtained again; "
        "detail: the reason (alert mail)",
        "token_deleted": "the administrator deleted a token; detail: what revocation did",
        "refresh_failing": "refreshing has failed for refresh_failing_after seconds; detail: "
        "the last error (alert mail, once per run of failures)",
        "receive_failed": "a POP check failed; detail: the reason (alert mail once it has "
        "failed for receive_failing_after seconds, once per episode)",
        "receive_recovered": "a POP check succeeded after failures; ends the episode",
        "store_unwritable": "a refreshed token could not be written to the store and is kept in "
        "memory until it can be (a restart loses it); detail: the store's error (alert mail, "
        "once per episode)",
    }
)


@dataclass(frozen=True, slots=True)
class _Line:
    """An event's log line: its level and message, a msgid whose first ``%s`` is the setting id
    and whose second, if any, is the detail."""

    level: int
    message: str

    @property
    def shows_detail(self) -> bool:
        return self.message.count("%s") == 2


_LINES: Final[Mapping[str, _Line]] = MappingProxyType(
    {
        "authorization_required": _Line(logging.INFO, N_("%s: authorization required at %s")),
        "token_acquired": _Line(logging.INFO, N_("%s: token acquired")),
        "token_refreshed": _Line(logging.INFO, N_("%s: token refreshed")),
        "token_invalid": _Line(logging.WARNING, N_("%s: token invalid: %s")),
        "token_deleted": _Line(logging.INFO, N_("%s: token deleted (%s)")),
        "refresh_failing": _Line(logging.WARNING, N_("%s: refreshing keeps failing: %s")),
        "receive_failed": _Line(logging.WARNING, N_("%s: receiving mail failed: %s")),
        "receive_recovered": _Line(logging.INFO, N_("%s: receiving mail works again")),
        "store_unwritable": _Line(
            logging.ERROR,
            N_("%s: the new token cannot be stored; it is kept in memory until it can be: %s"),
        ),
    }
)


def log_event(event: str, setting_id: str, detail: object) -> None:
    """Write `event`'s one log line (an event without a line of its own gets a generic one)."""
    line = _LINES.get(event)
    fields = {"event": event, "setting": setting_id}
    if line is None:
        log.info("%s: event %s: %s", setting_id, event, _detail(detail), extra=fields)
    elif line.shows_detail:
        log.log(line.level, line.message, setting_id, _detail(detail), extra=fields)
    else:
        log.log(line.level, line.message, setting_id, extra=fields)


def _detail(detail: object) -> Text:
    text = as_text(detail)
    return text if str(text) else Text.verbatim("-")
