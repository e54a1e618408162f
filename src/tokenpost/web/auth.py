"""Signing in and out, and the language switch.

A failed login says only that the name or the password was wrong (never which); repeated
failures lock the account and the client address (`throttle`), and a locked login is refused
without checking the password. Every outcome is logged with the account name and the client
address, never the password.
"""

from __future__ import annotations

import logging
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenpost.i18n import SUPPORTED
from tokenpost.secret import Secret
from tokenpost.web.identity import credential_stamp
from tokenpost.web.visit import Visit, VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()

MAX_NAME: Final = 200
MAX_PASSWORD: Final = 1024


@router.get("/login")
async def login_page(visit: VisitDep) -> Response:
    if visit.signed_in:
        return visit.redirect("/")
    visit.ensure_session()
    return visit.page("pages/login.html", name="", error=None)


@router.post("/login")
async def login(request: Request, visit: VisitDep) -> Response:
    form = await request.form()
    name = str(form.get("name", "")).strip()[:MAX_NAME]
    password = Secret(str(form.get("password", ""))[:MAX_PASSWORD])
    address = request.client.host if request.client is not None else "unknown"
    web, now = visit.web, visit.now
    locked = web.throttle.locked_until(name, address, now)
    if locked is not None:
        minutes = max(1, round((locked - now) / 60))
        log.info("web login refused for %r from %s: locked", name, address)
        error = visit.gettext("Too many failed logins: try again in {minutes} min.").format(
            minutes=minutes
        )
        return _login_again(visit, name, error, 429)
    principal = await web.app.accounts.authenticate(name, password) if name else None
    if principal is None:
        web.throttle.failed(name, address, now)
        log.info("web login failed for %r from %s", name, address)
        return _login_again(visit, name, visit.gettext("Wrong name or password."), 401)
    stamp = await credential_stamp(web.app, principal.name)
    web.throttle.succeeded(name)
    session = web.sessions.sign_in(
        visit.session, principal.name, is_admin=principal.is_admin, stamp=stamp, now=now
    )
    visit.replace_session(session)
    log.info("web login: %s from %s", principal.name, address)
    return visit.redirect("/")


def _login_again(visit: Visit, name: str, error: str, status: int) -> Response:
    return visit.page("pages/login.html", status=status, name=name, error=error)


@router.post("/logout")
async def logout(visit: VisitDep) -> Response:
    if visit.session is not None:
        log.info("web logout: %s", visit.session.account)
        visit.web.sessions.drop(visit.session.id)
    visit.replace_session(None)
    return visit.redirect("/login")


@router.post("/language")
async def switch_language(request: Request, visit: VisitDep) -> Response:
    """Keep the chosen language in the session; back to the page the switch was on."""
    form = await request.form()
    lang = str(form.get("lang", ""))
    session = visit.ensure_session()
    if lang in SUPPORTED:
        session.lang = lang
    back = str(form.get("back", "/"))
    # Only a path on this site: never an address elsewhere (no open redirect).
    if not back.startswith("/") or back.startswith("//") or "\\" in back:
        back = "/"
    return visit.redirect(back)
