"""The status overview: every setting with its token's label, account, provider, expiry, last
refresh, reason and next POP check; and the same as JSON for the page's live updates."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import Response

from tokenpost.web.rows import Row, all_rows, rows
from tokenpost.web.templating import iso_time
from tokenpost.web.visit import VisitDep

router = APIRouter()


@router.get("/")
async def status_page(visit: VisitDep) -> Response:
    found = await rows(visit.web, visit.lang)
    return visit.page("pages/status.html", rows=found, now=visit.now)


@router.get("/live/status")
async def live_status(visit: VisitDep) -> Response:
    """What live.js updates in place: each setting's label, reason and expiry (kept under the
    rows' key: every open page asks for it every few seconds)."""
    key, found = await all_rows(visit.web, visit.lang)
    body = visit.web.kept_json.get(("live", key), lambda: _live(found))
    return Response(body, media_type="application/json")


def _live(found: list[Row]) -> bytes:
    return json.dumps(
        {
            "settings": [
                {
                    "id": r.setting_id,
                    "state": r.status.state.value if r.status.state is not None else None,
                    "label": r.label,
                    "reason": r.reason,
                    "expires_at": iso_time(r.status.expires_at),
                    "obtained_at": iso_time(r.status.obtained_at),
                }
                for r in found
            ]
        },
        separators=(",", ":"),
    ).encode()
