"""The connection test of a setting (`tokenpost check`): each step with its outcome, and on a
failure what to do. It uses the setting's token (and may refresh it) and connects to the mail
server: an administrator's action."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from tokenpost.services.check import STEP_LABELS
from tokenpost.settings.model import parse_setting_id
from tokenpost.web.security import NO_PAGE, Refused
from tokenpost.web.visit import Visit, VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()


def _setting(setting_id: str) -> str:
    try:
        return parse_setting_id(setting_id)
    except ValueError:
        raise Refused(404, NO_PAGE) from None


@router.get("/check/{setting_id}")
async def check_page(setting_id: str, visit: VisitDep) -> Response:
    return _page(visit, _setting(setting_id), report=None)


@router.post("/check/{setting_id}")
async def run_check(setting_id: str, visit: VisitDep) -> Response:
    setting = _setting(setting_id)
    checker = visit.web.app.checker(visit.lang)
    report = await checker.check(setting, allow_plaintext=visit.web.config.allow_plaintext)
    outcome = "passed" if report.ok else "failed"
    log.info("web: connection test of %s: %s", setting, outcome)
    return _page(visit, setting, report=report)


def _page(visit: Visit, setting_id: str, report: object) -> Response:
    labels = {step: visit.gettext(label) for step, label in STEP_LABELS.items()}
    return visit.page("pages/check.html", setting_id=setting_id, report=report, labels=labels)
