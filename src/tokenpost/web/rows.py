"""The status of every setting, as the pages show it (`services.status` plus what the page adds:
the texts in the page's language, the next POP check)."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from tokenpost.i18n import show, state_label
from tokenpost.services.status import SettingStatus, status
from tokenpost.settings.model import POP_PREFIX, PopSetting
from tokenpost.web.state import WebState


@dataclass(frozen=True, slots=True)
class Row:
    """One setting. `label` is the device manual's label of its token ('' without OAuth 2.0);
    `reason` is why it is Invalid or what went wrong last, in the page's language.

    Its hash is computed once: the page looks up each row's HTML by it (`row_html`) at every
    request."""

    status: SettingStatus
    label: str
    reason: str
    previous_label: str
    previous_reason: str
    next_check: float | None
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.status, self.label, self.reason, self.previous_label, self.previous_reason)
        object.__setattr__(self, "_hash", hash((*fields, self.next_check)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def setting_id(self) -> str:
        return self.status.setting_id

    @property
    def is_pop(self) -> bool:
        return self.setting_id.startswith(POP_PREFIX)

    @property
    def pop_name(self) -> str:
        return self.setting_id.removeprefix(POP_PREFIX)

    @property
    def uses_token(self) -> bool:
        return self.status.state is not None

    @property
    def damaged(self) -> bool:
        return self.status.auth is None


async def rows(web: WebState, lang: str, setting_id: str | None = None) -> list[Row]:
    """Every setting's row (SMTP first), or `setting_id`'s only.

    Raises:
        NotFoundError: `setting_id` names no setting.
    """
    every = (await all_rows(web, lang))[1]
    if setting_id is None:
        return every
    found = [row for row in every if row.setting_id == setting_id]
    if found:
        return found
    # Not in what the cache read: `status` raises NotFoundError for a setting that is not there.
    app = web.app
    alone = await status(
        app.store, now=app.clock.now(), owners=app.authorizer.owners, setting_id=setting_id
    )
    return [_row(s, lang, None) for s in alone]


async def all_rows(web: WebState, lang: str) -> tuple[Hashable, list[Row]]:
    """Every setting's row (SMTP first), with a key: equal keys, equal rows. Rows are made again
    only when the status (`StatusCache`) or a next POP check changed."""
    snapshot = await web.app.status_cache.snapshot(web.app.clock.now())
    pops = [s for s in snapshot.settings if isinstance(s, PopSetting)]
    checks = tuple(_next_check(web, pop) for pop in pops)
    key = (snapshot.key, lang, checks)

    def make() -> list[Row]:
        check_of = dict(zip((pop.setting_id for pop in pops), checks, strict=True))
        return [_row(s, lang, check_of.get(s.setting_id)) for s in snapshot.rows]

    return key, web.kept_rows.get(key, make)


def _next_check(web: WebState, pop: PopSetting | None) -> float | None:
    """When the running daemon checks `pop` next, to the second (a setting never checked is
    due now: whole seconds keep its row the same within a second)."""
    if web.config.next_check is None or pop is None:
        return None
    return float(math.floor(web.config.next_check(pop)))


def _row(s: SettingStatus, lang: str, next_check: float | None) -> Row:
    return Row(
        status=s,
        label=state_label(s.state, lang) if s.state is not None else "",
        reason=show(s.reason, lang) if s.reason is not None else "",
        previous_label=state_label(s.previous_state, lang) if s.previous_state else "",
        previous_reason=show(s.previous_reason, lang) if s.previous_reason is not None else "",
        next_check=next_check,
    )
