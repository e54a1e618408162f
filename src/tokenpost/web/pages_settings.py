"""The SMTP setting and the POP settings: every field of `smtp set` and `pop add`, saved through
the settings service exactly as the CLI saves them (rules, host checks, damaged records, and the
revocation of tokens a change discards).

A password is write-only: the page never shows it, and an empty field keeps the stored one while
the method stays password (or apop). Switching the method drops what only the old method used,
as `smtp set --auth` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from tokenpost.errors import DamagedRecordError, TokenpostError
from tokenpost.i18n import show
from tokenpost.settings.model import AuthMethod, PopSetting, Security, SmtpSetting
from tokenpost.web import forms
from tokenpost.web.rows import rows
from tokenpost.web.security import NO_PAGE, Refused
from tokenpost.web.visit import Visit, VisitDep

if TYPE_CHECKING:
    from tokenpost.services.settings import DiscardedToken

log = logging.getLogger("tokenpost.web")
router = APIRouter()

SMTP_FIELDS: Final = (
    "server", "port", "security", "timeout", "sender_name", "sender_address", "auth",
    "provider", "account", "password", "ca_file",
)  # fmt: skip
POP_FIELDS: Final = (
    "name", "server", "port", "security", "check_interval", "auth", "provider", "account",
    "password", "deliver_to", "ca_file", "leave_on_server", "command",
)  # fmt: skip


def setting_values(setting: SmtpSetting | PopSetting | None) -> dict[str, str]:
    """A stored setting as form values (never its password)."""
    if setting is None:
        return {}
    found: dict[str, str] = {}
    for name in setting.__slots__:
        value = getattr(setting, name)
        if name == "password" or value is None:
            continue
        if isinstance(value, bool):
            found[name] = "on" if value else ""
        else:
            found[name] = str(getattr(value, "value", value))
    return found


def _password(form: FormData, auth: AuthMethod, current: SmtpSetting | PopSetting | None) -> Any:
    if auth not in (AuthMethod.PASSWORD, AuthMethod.APOP):
        return None
    given = forms.secret(form, "password")
    if given is not None:
        return given
    return current.password if current is not None and current.auth is auth else None


def _by_method(form: FormData, auth: AuthMethod) -> dict[str, Any]:
    """Provider and account as the method uses them: none drops both, password drops the
    provider (as `smtp set --auth` does)."""
    provider = forms.text(form, "provider") if auth is AuthMethod.OAUTH2 else None
    account = forms.text(form, "account") if auth is not AuthMethod.NONE else None
    return {"provider": provider, "account": account}


async def _providers(visit: Visit) -> list[str]:
    return sorted(p.name for p in await visit.web.app.store.list_providers())


def announce_saved(visit: Visit, message: str, discarded: Sequence[DiscardedToken]) -> None:
    visit.notice(message)
    line = visit.gettext("The token of {setting} was discarded ({detail}).")
    for token in discarded:
        visit.notice(line.format(setting=token.setting_id, detail=show(token.detail, visit.lang)))


# -- SMTP -----------------------------------------------------------------------------------------


@router.get("/settings/smtp")
async def smtp_page(visit: VisitDep) -> Response:
    try:
        current, damaged = await visit.web.app.store.get_smtp(), False
    except DamagedRecordError:
        current, damaged = None, True
    values = setting_values(current)
    return await _smtp_form(visit, values=values, current=current, damaged=damaged)


async def _smtp_form(
    visit: Visit,
    *,
    values: dict[str, str],
    current: SmtpSetting | None,
    damaged: bool,
    problems: forms.Problems | None = None,
    status: int = 200,
) -> Response:
    found = await rows(visit.web, visit.lang, "smtp") if current is not None else []
    return visit.page(
        "pages/smtp.html",
        status=status,
        values=values,
        has_password=current is not None and current.password is not None,
        damaged=damaged,
        exists=current is not None,
        problems=problems or forms.Problems(),
        providers=await _providers(visit),
        row=found[0] if found else None,
        now=visit.now,
    )


@router.post("/settings/smtp")
async def smtp_save(request: Request, visit: VisitDep) -> Response:
    form = await request.form()
    app = visit.web.app
    try:
        current, damaged = await app.store.get_smtp(), False
    except DamagedRecordError:
        current, damaged = None, True
    try:
        auth = forms.choice(form, "auth", AuthMethod)
        setting = SmtpSetting(
            server=forms.text(form, "server") or "",
            port=forms.number(form, "port"),
            security=forms.choice(form, "security", Security),
            timeout=forms.number(form, "timeout"),
            sender_name=forms.text(form, "sender_name") or "",
            sender_address=forms.text(form, "sender_address") or "",
            auth=auth,
            password=_password(form, auth, current),
            ca_file=forms.text(form, "ca_file"),
            **_by_method(form, auth),
        )
        discarded = await app.settings.put_smtp(setting)
    except TokenpostError as error:
        problems = forms.Problems.of(error, visit.lang, SMTP_FIELDS)
        values = forms.values(form, {"password", "csrf"})
        return await _smtp_form(
            visit, values=values, current=current, damaged=damaged, problems=problems, status=400
        )
    log.info("web: %s saved the SMTP setting", visit.account)
    announce_saved(visit, visit.gettext("SMTP setting saved."), discarded)
    return visit.redirect("/settings/smtp")


# -- POP ------------------------------------------------------------------------------------------


@router.get("/settings/pop")
async def pop_list(visit: VisitDep) -> Response:
    app = visit.web.app
    settings = sorted(await app.store.list_pop(), key=lambda p: p.name)
    damaged = [
        d.record_id.removeprefix("pop:")
        for d in await app.settings.damaged()
        if d.record_id.startswith("pop:")
    ]
    found = {r.setting_id: r for r in await rows(visit.web, visit.lang)}
    return visit.page(
        "pages/pop_list.html", settings=settings, damaged=damaged, rows=found, now=visit.now
    )


@router.get("/settings/new-pop")
async def pop_new(visit: VisitDep) -> Response:
    defaults = {"security": "tls", "port": "995", "check_interval": "300", "auth": "oauth2"}
    return await _pop_form(visit, name=None, values=defaults, current=None)


async def _pop_form(
    visit: Visit,
    *,
    name: str | None,
    values: dict[str, str],
    current: PopSetting | None,
    problems: forms.Problems | None = None,
    status: int = 200,
    damaged: bool = False,
) -> Response:
    found = await rows(visit.web, visit.lang, f"pop:{name}") if current is not None else []
    return visit.page(
        "pages/pop_form.html",
        status=status,
        name=name,
        values=values,
        has_password=current is not None and current.password is not None,
        damaged=damaged,
        problems=problems or forms.Problems(),
        providers=await _providers(visit),
        row=found[0] if found else None,
        now=visit.now,
    )


async def _current_pop(visit: Visit, name: str) -> tuple[PopSetting | None, bool]:
    try:
        current = await visit.web.app.store.get_pop(name)
    except DamagedRecordError:
        return None, True
    if current is None:
        raise Refused(404, NO_PAGE)
    return current, False


@router.get("/settings/pop/{name}")
async def pop_edit(name: str, visit: VisitDep) -> Response:
    current, damaged = await _current_pop(visit, name)
    values = setting_values(current)
    return await _pop_form(visit, name=name, values=values, current=current, damaged=damaged)


@router.post("/settings/new-pop")
async def pop_create(request: Request, visit: VisitDep) -> Response:
    form = await request.form()
    name = forms.text(form, "name") or ""
    try:
        exists = await visit.web.app.store.get_pop(name) is not None if name else False
    except DamagedRecordError:
        exists = True
    if exists:
        problems = forms.Problems(
            {"name": visit.gettext("a POP setting of this name exists; edit it instead")}
        )
        values = forms.values(form, {"password", "csrf"})
        return await _pop_form(
            visit, name=None, values=values, current=None, problems=problems, status=400
        )
    return await _pop_save(visit, form, name, None, new=True)


@router.post("/settings/pop/{name}")
async def pop_update(name: str, request: Request, visit: VisitDep) -> Response:
    current, damaged = await _current_pop(visit, name)
    return await _pop_save(visit, await request.form(), name, current, damaged=damaged)


async def _pop_save(
    visit: Visit,
    form: FormData,
    name: str,
    current: PopSetting | None,
    *,
    new: bool = False,
    damaged: bool = False,
) -> Response:
    try:
        auth = forms.choice(form, "auth", AuthMethod)
        setting = PopSetting(
            name=name,
            server=forms.text(form, "server") or "",
            port=forms.number(form, "port"),
            security=forms.choice(form, "security", Security),
            check_interval=forms.number(form, "check_interval"),
            auth=auth,
            deliver_to=forms.text(form, "deliver_to") or "",
            password=_password(form, auth, current),
            ca_file=forms.text(form, "ca_file"),
            leave_on_server=forms.checked(form, "leave_on_server"),
            command=forms.text(form, "command"),
            **_by_method(form, auth),
        )
        discarded = await visit.web.app.settings.put_pop(setting)
    except TokenpostError as error:
        problems = forms.Problems.of(error, visit.lang, POP_FIELDS)
        values = forms.values(form, {"password", "csrf"})
        shown_name = None if new else name
        return await _pop_form(
            visit,
            name=shown_name,
            values=values,
            current=current,
            problems=problems,
            status=400,
            damaged=damaged,
        )
    log.info("web: %s saved POP setting %s", visit.account, name)
    announce_saved(visit, visit.gettext("POP setting {name} saved.").format(name=name), discarded)
    return visit.redirect(f"/settings/pop/{name}")


@router.get("/settings/pop/{name}/remove")
async def pop_remove_page(name: str, visit: VisitDep) -> Response:
    await _current_pop(visit, name)
    return visit.page("pages/pop_remove.html", name=name)


@router.post("/settings/pop/{name}/remove")
async def pop_remove(name: str, visit: VisitDep) -> Response:
    try:
        discarded = await visit.web.app.settings.remove_pop(name)
    except TokenpostError as error:
        visit.notice(show(error, visit.lang))
        return visit.redirect("/settings/pop")
    log.info("web: %s removed POP setting %s", visit.account, name)
    announce_saved(visit, visit.gettext("POP setting {name} removed.").format(name=name), discarded)
    return visit.redirect("/settings/pop")
