"""The status overview: every setting with its token's label, account, provider, expiry, last
refresh, reason and next POP check; and the same as JSON for the page's live updates."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from tokenpost.web.rows import rows
from tokenpost.web.templating import iso_time
from tokenpost.web.visit import VisitDep

router = APIRouter()


@router.get("/")
async def status_page(visit: VisitDep) -> Response:
    found = await rows(visit.web, visit.lang)
    return visit.page("pages/status.html", rows=found, now=visit.now)


@router.get("/live/status")
async def live_status(visit: VisitDep) -> Response:
    """What live.js updates in place: each setting's label, reason and expiry."""
    found = await rows(visit.web, visit.lang)
    return JSONResponse(
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
        }
    )
