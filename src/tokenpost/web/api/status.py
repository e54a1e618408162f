"""``GET /api/v1/status`` and ``GET /api/v1/status/{setting_id}``: every setting's token as
`token status --json` shows it (the same keys), with what the web page adds: the label of the
previous state, when the token in force was last refreshed, and the next POP check.

A pending device code (`user_code`, `verification_uri`) is shown to administrators only: with it
anyone could approve the device with their own mailbox (the web page shows it to them only too).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from fastapi.responses import Response

from tokenpost.accounts import Principal
from tokenpost.errors import NotFoundError
from tokenpost.isotime import iso_utc
from tokenpost.web.api import models
from tokenpost.web.api.credentials import PrincipalDep
from tokenpost.web.api.models import SETTING_ID_PATTERN
from tokenpost.web.api.routing import api_router, error_responses
from tokenpost.web.rows import Row, all_rows, rows
from tokenpost.web.visit import Visit, VisitDep

router = api_router()

SettingIdPath = Annotated[
    str,
    Path(
        pattern=SETTING_ID_PATTERN,
        description="smtp or pop:NAME (the colon may be sent as %3A)",
        examples=["smtp", "pop:fax"],
    ),
]


def iso(when: float | None) -> str | None:
    return None if when is None else iso_utc(when)


def setting_status(row: Row, who: Principal) -> models.SettingStatus:
    s = row.status
    return models.SettingStatus(
        id=s.setting_id,
        auth=s.auth,
        state=s.state.value if s.state else None,
        label=row.label or None,
        account=s.account,
        provider=s.provider,
        expires_at=iso(s.expires_at),
        obtained_at=iso(s.obtained_at),
        reason=row.reason or None,
        user_code=s.user_code if who.is_admin else None,
        verification_uri=s.verification_uri if who.is_admin else None,
        refresh_failures=s.failures,
        previous_state=s.previous_state.value if s.previous_state else None,
        previous_label=row.previous_label or None,
        previous_expires_at=iso(s.previous_expires_at),
        previous_reason=row.previous_reason or None,
        in_force=s.in_force if s.state else None,
        next_check=iso(row.next_check),
    )


async def one_row(visit: Visit, setting_id: str) -> Row:
    """The setting's row. Raises NotFoundError when there is no such setting."""
    found = await rows(visit.web, visit.lang, setting_id)
    if not found:
        raise NotFoundError("no setting {setting!r}", setting=setting_id)
    return found[0]


@router.get("/status", summary="Every setting's token", response_model=models.StatusList)
async def all_settings(visit: VisitDep, who: PrincipalDep) -> Response:
    """The body is kept under the rows' key and the role (`rows.all_rows`): encoded again only
    when a status changed."""
    key, found = await all_rows(visit.web, visit.lang)

    def encode() -> bytes:
        listed = models.StatusList(settings=[setting_status(r, who) for r in found])
        return listed.model_dump_json().encode()

    body = visit.web.kept_json.get((key, who.is_admin), encode)
    return Response(body, media_type="application/json")


@router.get("/status/{setting_id}", summary="One setting's token", responses=error_responses(404))
async def one_setting(
    setting_id: SettingIdPath, visit: VisitDep, who: PrincipalDep
) -> models.SettingStatus:
    return setting_status(await one_row(visit, setting_id), who)
