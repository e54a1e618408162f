"""Alerts: who hears about token and receive trouble (`alerts set`): the alert mail recipients,
the hook command and after how long a failing refresh or receive alerts."""

from __future__ import annotations

import logging
import re
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenpost.errors import TokenpostError
from tokenpost.settings.model import AlertSettings
from tokenpost.web import forms
from tokenpost.web.visit import Visit, VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()

FIELDS: Final = ("recipients", "hook", "refresh_failing_after", "receive_failing_after")
_SEPARATORS: Final = re.compile(r"[\s,;]+")


def alert_values(a: AlertSettings) -> dict[str, str]:
    return {
        "recipients": "\n".join(a.recipients),
        "hook": a.hook or "",
        "refresh_failing_after": str(a.refresh_failing_after),
        "receive_failing_after": str(a.receive_failing_after),
    }


def _page(
    visit: Visit, values: dict[str, str], problems: forms.Problems, status: int = 200
) -> Response:
    return visit.page("pages/alerts.html", status=status, values=values, problems=problems)


@router.get("/alerts")
async def alerts_page(visit: VisitDep) -> Response:
    try:
        current = await visit.web.app.store.get_alerts()
    except TokenpostError as error:
        return _page(visit, {}, forms.Problems.of(error, visit.lang, FIELDS))
    return _page(visit, alert_values(current), forms.Problems())


@router.post("/alerts")
async def alerts_save(request: Request, visit: VisitDep) -> Response:
    form = await request.form()
    recipients = tuple(r for r in _SEPARATORS.split(forms.text(form, "recipients") or "") if r)
    settings = AlertSettings(
        recipients=recipients,
        hook=forms.text(form, "hook"),
        refresh_failing_after=forms.number(form, "refresh_failing_after"),
        receive_failing_after=forms.number(form, "receive_failing_after"),
    )
    try:
        await visit.web.app.settings.put_alerts(settings)
    except TokenpostError as error:
        problems = forms.Problems.of(error, visit.lang, FIELDS)
        return _page(visit, forms.values(form, {"csrf"}), problems, status=400)
    log.info("web: %s saved the alert settings", visit.account)
    visit.notice(visit.gettext("Alert settings saved."))
    return visit.redirect("/alerts")
