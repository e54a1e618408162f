"""The status of every setting, as the pages show it (`services.status` plus what the page adds:
the texts in the page's language, the next POP check)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenpost.i18n import show, state_label
from tokenpost.services.status import SettingStatus, status, status_and_settings
from tokenpost.settings.model import POP_PREFIX, PopSetting
from tokenpost.web.state import WebState


@dataclass(frozen=True, slots=True)
class Row:
    """One setting. `label` is the device manual's label of its token ('' without OAuth 2.0);
    `reason` is why it is Invalid or what went wrong last, in the page's language."""

    status: SettingStatus
    label: str
    reason: str
    previous_label: str
    previous_reason: str
    next_check: float | None

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
    """Every setting's row (SMTP first), or `setting_id`'s only."""
    app = web.app
    now, owners = app.clock.now(), app.authorizer.owners
    if setting_id is None:
        found, settings = await status_and_settings(app.store, now=now, owners=owners)
        pops = {s.setting_id: s for s in settings if isinstance(s, PopSetting)}
    else:
        found = await status(app.store, now=now, owners=owners, setting_id=setting_id)
        pops = {p.setting_id: p for p in await app.store.list_pop()}
    return [_row(s, lang, _next_check(web, pops.get(s.setting_id))) for s in found]


def _next_check(web: WebState, pop: PopSetting | None) -> float | None:

    if web.config.next_check is None or pop is None:
        return None
    return web.config.next_check(pop)


def _row(s: SettingStatus, lang: str, next_check: float | None) -> Row:
    return Row(
        status=s,
        label=state_label(s.state, lang) if s.state is not None else "",
        reason=show(s.reason, lang) if s.reason is not None else "",
        previous_label=state_label(s.previous_state, lang) if s.previous_state else "",
        previous_reason=show(s.previous_reason, lang) if s.previous_reason is not None else "",
        next_check=next_check,
    )
