"""One request as the views see it: its session, its language, and how to answer.

`visit` (a dependency) finds the session named by the cookie and checks that a signed-in
session's account still exists unchanged (removed, re-created, another role or another password:
the session ends). It never creates a session; `Visit.ensure_session` does, for the pages that
need one before login (the login form, the language switch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tokenpost.i18n import translator
from tokenpost.web import language
from tokenpost.web.identity import credential_stamp
from tokenpost.web.sessions import COOKIE, Session
from tokenpost.web.state import WebState
from tokenpost.web.templating import render


@dataclass
class Visit:
    request: Request
    web: WebState
    session: Session | None
    lang: str
    _set_cookie: bool = False

    @property
    def now(self) -> float:
        return self.web.app.clock.now()

    @property
    def account(self) -> str | None:
        """The name of the account this visit acts for, or None."""
        return self.session.account if self.session is not None else None

    @property
    def signed_in(self) -> bool:
        return self.session is not None and self.session.signed_in

    @property
    def is_admin(self) -> bool:
        return self.session is not None and self.session.signed_in and self.session.is_admin

    def gettext(self, message: str) -> str:
        return translator(self.lang).gettext(message)

    def ensure_session(self) -> Session:
        if self.session is None:
            self.session = self.web.sessions.new(self.now, lang=None)
            self._set_cookie = True
        return self.session

    def replace_session(self, session: Session | None) -> None:
        """After login (a new session) or logout (None): the cookie follows."""
        self.session = session
        self._set_cookie = True
        if session is not None and session.lang is not None:
            self.lang = session.lang

    def notice(self, message: str) -> None:
        """A line shown once on the next page (already translated)."""
        if self.session is not None:
            self.session.notices.append(message)

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        session = self.session
        base = {
            "visit": self,
            "account": self.account,
            "is_admin": self.is_admin,
            "csrf": session.csrf if session is not None else "",
            "notices": session.take_notices() if session is not None else [],
            "token_actions": self.web.token_actions,
            "path": self.request.url.path,
        }
        body = render(self.web.env, template, self.lang, {**base, **context})
        return self._with_cookie(HTMLResponse(body, status_code=status))

    def redirect(self, url: str) -> Response:
        """See other (303): after a POST, the browser GETs `url`."""
        return self._with_cookie(RedirectResponse(url, status_code=303))

    def _with_cookie(self, response: Response) -> Response:
        if not self._set_cookie:
            return response
        if self.session is None:
            response.delete_cookie(
                COOKIE,
                path="/",
                secure=self.web.config.secure_cookies,
                httponly=True,
                samesite="strict",
            )
        else:
            response.set_cookie(
                COOKIE,
                self.session.id,
                path="/",
                secure=self.web.config.secure_cookies,
                httponly=True,
                samesite="strict",
            )
        return response


def web_state(request: Request) -> WebState:
    state = request.app.state.web
    assert isinstance(state, WebState)  # noqa: S101 - create_app put it there
    return state


async def visit(request: Request) -> Visit:
    """The request's session (checked) and language; cached for the request."""
    cached = getattr(request.state, "visit", None)
    if isinstance(cached, Visit):
        return cached
    web = web_state(request)
    now = web.app.clock.now()
    session = web.sessions.get(request.cookies.get(COOKIE), now)
    if session is not None and session.signed_in and not await _still_valid(web, session):
        web.sessions.drop(session.id)
        session = None
    lang = language.choose(
        session.lang if session is not None else None, request.headers.get("accept-language")
    )
    found = Visit(request, web, session, lang)
    request.state.visit = found
    return found


async def _still_valid(web: WebState, session: Session) -> bool:
    """The account exists and is what it was at login: same role, same password, not removed
    and added again (`identity.credential_stamp`)."""
    if session.account is None:
        return False
    return await credential_stamp(web.app, session.account) == session.stamp


VisitDep = Annotated[Visit, Depends(visit)]
