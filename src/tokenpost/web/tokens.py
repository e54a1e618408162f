"""[Get Token] on the web page: the authorization is started by the request and carried by the
service (`Authorizer.begin`), so it survives a page reload or a closed tab.

- ``GET /tokens/{setting}/get`` shows the pending authorization (a second click shows the same
  one), or a page with the [Get Token] button. Device flow: the user code (large, selected by one
  click), the verification link, its QR code as inline SVG, and a countdown; the token's label
  turns to Acquired by itself (live.js polls /live/status; the style sheet hides the prompt once
  the flow is no longer pending). Browser flow: the address to open, and the form to paste the
  address the browser ended on.
- ``POST /tokens/{setting}/get`` starts it (`begin`); ``POST …/finish`` takes the pasted address
  (`finish_browser`); ``POST …/cancel`` ends it (`cancel`), the previous token staying in force.
- ``GET /oauth/callback`` finishes a browser flow whose registered redirect URI points at this
  page. The browser comes back from the provider's site, so its SameSite=Strict session cookie is
  withheld (``Sec-Fetch-Site: cross-site``): the page answers with a ``Refresh`` to the same
  address, which the browser loads from this site, with the cookie. The `state` in the address is
  what binds it to the flow (RFC 6749 §10.12); only a signed-in administrator finishes it.

Only an administrator sees any of this (the prompt would let anyone approve the device with
their own account); every change is a POST through the app's guard (same origin, CSRF token).
Nothing here shows or logs the code, state or verifier; a pasted address is never shown again.
"""

from __future__ import annotations

import logging
from typing import Final

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from tokenpost.errors import TokenpostError
from tokenpost.i18n import show
from tokenpost.services.authorize import AddressRefusedError, BrowserPrompt, DevicePrompt, Prompt
from tokenpost.settings.model import parse_setting_id
from tokenpost.text import N_
from tokenpost.tokens.state import Acquired
from tokenpost.web.rows import Row, rows
from tokenpost.web.security import NO_PAGE, Refused
from tokenpost.web.templating import utc_time
from tokenpost.web.visit import Visit, VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()

CALLBACK_PATH: Final = "/oauth/callback"
MAX_ADDRESS: Final = 16 * 1024
_ADMIN_ONLY: Final = N_("Refused: only an administrator may change this.")


def _setting(setting_id: str) -> str:
    try:
        return parse_setting_id(setting_id)
    except ValueError:
        raise Refused(404, NO_PAGE) from None


async def _row(visit: Visit, setting_id: str) -> Row:
    """The setting's row, for an administrator; 404 for a setting without a token."""
    if not visit.is_admin:
        raise Refused(403, _ADMIN_ONLY)
    found = await rows(visit.web, visit.lang, _setting(setting_id))
    if not found or not found[0].uses_token or found[0].damaged:
        raise Refused(404, NO_PAGE)
    return found[0]


def qr_svg(data: str) -> Markup:
    """`data` as a QR code in inline SVG: no script, no style attribute (the page's CSP)."""
    code = segno.make(data, error="m")
    svg = code.svg_inline(scale=4, dark="#000", light="#fff", svgclass="qr", lineclass=None)
    return Markup(svg)  # noqa: S704 - segno's own markup; the data is encoded as a path


def _page(
    visit: Visit,
    row: Row,
    prompt: Prompt | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    device = prompt if isinstance(prompt, DevicePrompt) else None
    browser = prompt if isinstance(prompt, BrowserPrompt) else None
    link = None
    if device is not None:
        link = device.verification_uri_complete or device.verification_uri
    return visit.page(
        "pages/token_get.html",
        status=status,
        row=row,
        device=device,
        browser=browser,
        link=link,
        qr=qr_svg(link) if link else None,
        expires_at=prompt.expires_at if prompt is not None else None,
        now=visit.now,
        error=error,
    )


@router.get("/tokens/{setting_id}/get")
async def token_page(setting_id: str, visit: VisitDep) -> Response:
    """The pending authorization of the setting, or the page to start one."""
    row = await _row(visit, setting_id)
    return _page(visit, row, await visit.web.app.authorizer.pending(row.setting_id))


@router.post("/tokens/{setting_id}/get")
async def get_token(setting_id: str, visit: VisitDep) -> Response:
    """[Get Token]: start the provider's flow (or find the pending one) and show it."""
    row = await _row(visit, setting_id)
    setting = row.setting_id
    try:
        result = await visit.web.app.authorizer.begin(setting)
    except TokenpostError as error:
        visit.notice(show(error, visit.lang))
        return visit.redirect(f"/tokens/{setting}/get")
    if isinstance(result, Acquired):
        return _acquired(visit, setting, result)
    log.info("web: %s started an authorization of %s", visit.account, setting)
    return visit.redirect(f"/tokens/{setting}/get")


@router.post("/tokens/{setting_id}/finish")
async def finish(setting_id: str, request: Request, visit: VisitDep) -> Response:
    """The address the browser ended on, pasted: finishes the pending browser flow."""
    row = await _row(visit, setting_id)
    setting = row.setting_id
    address = str((await request.form()).get("address", ""))[:MAX_ADDRESS]
    authorizer = visit.web.app.authorizer
    try:
        acquired = await authorizer.finish_browser(setting, address)
    except AddressRefusedError as refused:
        # Nothing changed: the same page again, the reason beside the field.
        prompt = await authorizer.pending(setting)
        return _page(visit, row, prompt, error=show(refused, visit.lang), status=400)
    except TokenpostError as error:
        visit.notice(show(error, visit.lang))
        return visit.redirect("/")
    return _acquired(visit, setting, acquired)


@router.post("/tokens/{setting_id}/cancel")
async def cancel(setting_id: str, visit: VisitDep) -> Response:
    """End the pending authorization; a working token stays in force."""
    row = await _row(visit, setting_id)
    setting = row.setting_id
    await visit.web.app.authorizer.cancel(setting)
    log.info("web: %s cancelled the authorization of %s", visit.account, setting)
    notice = visit.gettext("Authorization cancelled.")
    [now] = await rows(visit.web, visit.lang, setting)
    if now.status.in_force and now.status.expires_at is not None:
        kept = visit.gettext("The previous token stays in force (valid until {expires}).")
        notice += " " + kept.format(expires=utc_time(now.status.expires_at))
    visit.notice(notice)
    return visit.redirect("/")


@router.get(CALLBACK_PATH)
async def callback(request: Request, visit: VisitDep) -> Response:
    """The provider sent the browser back here (the registered redirect URI is this page)."""
    if not visit.is_admin:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return _load_again_from_here(visit, str(request.url))
        raise Refused(
            403,
            N_(
                "Sign in as an administrator to finish the authorization; it stays pending:"
                " open its token page and paste this address there."
            ),
        )
    address = str(request.url)
    authorizer = visit.web.app.authorizer
    setting = await authorizer.setting_of_address(address)
    if setting is None:
        raise Refused(
            400,
            N_(
                "This address belongs to no pending authorization (it was already used, or the"
                " authorization was cancelled or has ended). Start it again with Get Token."
            ),
        )
    try:
        acquired = await authorizer.finish_browser(setting, address)
    except TokenpostError as error:
        visit.notice(show(error, visit.lang))
        return visit.redirect(f"/tokens/{setting}/get")
    return _acquired(visit, setting, acquired)


def _load_again_from_here(visit: Visit, address: str) -> Response:
    """A page that has the browser load `address` again, now from this site (with its
    SameSite=Strict cookie); a link for a browser that does not follow `Refresh`."""
    page = visit.page("pages/token_callback.html", address=address)
    assert isinstance(page, HTMLResponse)  # noqa: S101 - visit.page renders HTML
    page.headers["Refresh"] = "0; url=" + address
    return page


def _acquired(visit: Visit, setting: str, token: Acquired) -> Response:
    log.info("web: %s obtained a token for %s", visit.account, setting)
    message = visit.gettext("The token of {setting} was acquired (valid until {expires}).")
    visit.notice(message.format(setting=setting, expires=utc_time(token.expires_at)))
    return visit.redirect("/")
