"""[Delete] a token, with a confirmation page naming the setting (the device manual's button):
revoked at the provider where it can be, always forgotten here; the label then reads Not
acquired."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from tokenpost.errors import TokenpostError
from tokenpost.i18n import show
from tokenpost.settings.model import parse_setting_id
from tokenpost.web.rows import rows
from tokenpost.web.security import NO_PAGE, Refused
from tokenpost.web.visit import VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()


def _setting(setting_id: str) -> str:
    try:
        return parse_setting_id(setting_id)
    except ValueError:
        raise Refused(404, NO_PAGE) from None


@router.get("/tokens/{setting_id}/delete")
async def confirm_delete(setting_id: str, visit: VisitDep) -> Response:
    found = await rows(visit.web, visit.lang, _setting(setting_id))
    if not found:
        raise Refused(404, NO_PAGE)
    return visit.page("pages/token_delete.html", row=found[0], now=visit.now)


@router.post("/tokens/{setting_id}/delete")
async def delete(setting_id: str, visit: VisitDep) -> Response:
    setting = _setting(setting_id)
    try:
        result = await visit.web.app.deleter.delete(setting)
    except TokenpostError as error:
        visit.notice(show(error, visit.lang))
        return visit.redirect("/")
    log.info("web: %s deleted the token of %s", visit.account, setting)
    message = visit.gettext("The token of {setting} was deleted ({detail}).")
    visit.notice(message.format(setting=setting, detail=show(result.detail, visit.lang)))
    return visit.redirect("/")
