"""Providers: add, edit, remove. `provider add` replaces a provider whole; so does saving this
form, except that the client secret is write-only: never shown, and an empty field keeps the
stored one (a box removes it)."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from tokenpost.errors import DamagedRecordError, TokenpostError
from tokenpost.i18n import show
from tokenpost.settings.model import Flow, Preset, Provider
from tokenpost.web import forms
from tokenpost.web.pages_settings import announce_saved
from tokenpost.web.security import NO_PAGE, Refused
from tokenpost.web.visit import Visit, VisitDep

log = logging.getLogger("tokenpost.web")
router = APIRouter()

FIELDS: Final = (
    "name", "preset", "client_id", "client_secret", "flow", "tenant", "issuer",
    "authorization_endpoint", "token_endpoint", "device_authorization_endpoint",
    "revocation_endpoint", "scope", "smtp_scope", "pop_scope", "ca_file", "redirect_uri", "proxy",
)  # fmt: skip


def provider_values(p: Provider) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in p.__slots__:
        value = getattr(p, name)
        if name == "client_secret" or value is None:
            continue
        if isinstance(value, tuple):
            found[name] = " ".join(value)
        else:
            found[name] = str(getattr(value, "value", value))
    return found


@router.get("/providers")
async def provider_list(visit: VisitDep) -> Response:
    app = visit.web.app
    providers = sorted(await app.store.list_providers(), key=lambda p: p.name)
    damaged = [
        d.record_id.removeprefix("provider:")
        for d in await app.settings.damaged()
        if d.record_id.startswith("provider:")
    ]
    return visit.page("pages/providers.html", providers=providers, damaged=damaged)


@router.get("/new-provider")
async def provider_new(visit: VisitDep) -> Response:
    return _form(visit, name=None, values={"preset": "microsoft"}, has_secret=False)


def _form(
    visit: Visit,
    *,
    name: str | None,
    values: dict[str, str],
    has_secret: bool,
    problems: forms.Problems | None = None,
    status: int = 200,
    damaged: bool = False,
) -> Response:
    return visit.page(
        "pages/provider_form.html",
        status=status,
        name=name,
        values=values,
        has_secret=has_secret,
        problems=problems or forms.Problems(),
        damaged=damaged,
        presets=[p.value for p in Preset],
        flows=[f.value for f in Flow],
    )


async def _current(visit: Visit, name: str) -> tuple[Provider | None, bool]:
    try:
        current = await visit.web.app.store.get_provider(name)
    except DamagedRecordError:
        return None, True
    if current is None:
        raise Refused(404, NO_PAGE)
    return current, False


@router.get("/providers/{name}")
async def provider_edit(name: str, visit: VisitDep) -> Response:
    current, damaged = await _current(visit, name)
    values = provider_values(current) if current is not None else {}
    has_secret = current is not None and current.client_secret is not None
    return _form(visit, name=name, values=values, has_secret=has_secret, damaged=damaged)


@router.post("/new-provider")
async def provider_create(request: Request, visit: VisitDep) -> Response:
    form = await request.form()
    name = forms.text(form, "name") or ""
    try:
        exists = await visit.web.app.store.get_provider(name) is not None if name else False
    except DamagedRecordError:
        exists = True
    if exists:
        problems = forms.Problems(
            {"name": visit.gettext("a provider of this name exists; edit it instead")}
        )
        values = forms.values(form, _SECRETS)
        return _form(
            visit, name=None, values=values, has_secret=False, problems=problems, status=400
        )
    return await _save(visit, form, name, None, new=True)


@router.post("/providers/{name}")
async def provider_update(name: str, request: Request, visit: VisitDep) -> Response:
    current, damaged = await _current(visit, name)
    return await _save(visit, await request.form(), name, current, damaged=damaged)


_SECRETS: Final = frozenset({"client_secret", "csrf"})


async def _save(
    visit: Visit,
    form: FormData,
    name: str,
    current: Provider | None,
    *,
    new: bool = False,
    damaged: bool = False,
) -> Response:
    secret = forms.secret(form, "client_secret")
    if secret is None and current is not None and not forms.checked(form, "remove_client_secret"):
        secret = current.client_secret
    try:
        flow = forms.text(form, "flow")
        provider = Provider(
            name=name,
            preset=forms.choice(form, "preset", Preset),
            client_id=forms.text(form, "client_id") or "",
            client_secret=secret,
            flow=forms.choice(form, "flow", Flow) if flow is not None else None,
            tenant=forms.text(form, "tenant"),
            issuer=forms.text(form, "issuer"),
            authorization_endpoint=forms.text(form, "authorization_endpoint"),
            token_endpoint=forms.text(form, "token_endpoint"),
            device_authorization_endpoint=forms.text(form, "device_authorization_endpoint"),
            revocation_endpoint=forms.text(form, "revocation_endpoint"),
            scope=forms.scopes(form, "scope"),
            smtp_scope=forms.scopes(form, "smtp_scope"),
            pop_scope=forms.scopes(form, "pop_scope"),
            ca_file=forms.text(form, "ca_file"),
            redirect_uri=forms.text(form, "redirect_uri"),
            proxy=forms.text(form, "proxy"),
        )
        discarded = await visit.web.app.settings.put_provider(provider)
    except TokenpostError as error:
        problems = forms.Problems.of(error, visit.lang, FIELDS)
        has_secret = current is not None and current.client_secret is not None
        return _form(
            visit,
            name=None if new else name,
            values=forms.values(form, _SECRETS),
            has_secret=has_secret,
            problems=problems,
            status=400,
            damaged=damaged,
        )
    log.info("web: %s saved provider %s", visit.account, name)
    announce_saved(visit, visit.gettext("Provider {name} saved.").format(name=name), discarded)
    return visit.redirect(f"/providers/{name}")


@router.get("/providers/{name}/remove")
async def provider_remove_page(name: str, visit: VisitDep) -> Response:
    await _current(visit, name)
    return visit.page("pages/provider_remove.html", name=name)


@router.post("/providers/{name}/remove")
async def provider_remove(name: str, visit: VisitDep) -> Response:
    try:
        await visit.web.app.settings.remove_provider(name)
    except TokenpostError as error:
        visit.notice(show(error, visit.lang))
        return visit.redirect(f"/providers/{name}")
    log.info("web: %s removed provider %s", visit.account, name)
    visit.notice(visit.gettext("Provider {name} removed.").format(name=name))
    return visit.redirect("/providers")
