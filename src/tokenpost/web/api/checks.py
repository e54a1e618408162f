"""``POST /api/v1/checks/{setting_id}``: the connection test (`tokenpost check`): each step with
its outcome, stopping at the first that fails, and what to do about it. It connects to the mail
server and may refresh the token: an administrator's action. A failed test is still a 200: the
test ran; `ok` says how it went."""

from __future__ import annotations

from tokenpost.services.check import STEP_LABELS
from tokenpost.web.api import models
from tokenpost.web.api.routing import api_router
from tokenpost.web.api.status import SettingIdPath
from tokenpost.web.visit import VisitDep

router = api_router()


@router.post("/checks/{setting_id}", summary="Connection test: connect, TLS, authenticate, quit")
async def check(setting_id: SettingIdPath, visit: VisitDep) -> models.CheckReport:
    web = visit.web
    checker = web.app.checker(visit.lang)
    report = await checker.check(setting_id, allow_plaintext=web.config.allow_plaintext)
    return models.CheckReport(
        setting=report.setting_id,
        ok=report.ok,
        steps=[
            models.CheckStep(
                step=s.step,
                label=visit.gettext(STEP_LABELS[s.step]) if s.step in STEP_LABELS else s.step,
                ok=s.ok,
                detail=s.detail,
            )
            for s in report.steps
        ],
        fix=report.fix,
    )
