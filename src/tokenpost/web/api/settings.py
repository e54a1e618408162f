"""The settings, read and written through the settings service exactly as the CLI does: the same
rules (every problem at once, `validation_failed` with each field), the host checks, damaged
records, and the revocation of every token a change discards (listed in the answer).

A PUT gives the whole setting. Secrets are write-only: a password or client secret left out
(null) keeps the stored one while it still applies (the same method; `remove_client_secret`
drops a provider's); an answer only says whether one is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from fastapi import Path

from tokenpost.errors import DamagedRecordError, NotFoundError
from tokenpost.i18n import show
from tokenpost.oauth.providers import effective_flow
from tokenpost.secret import Secret
from tokenpost.services.settings import DiscardedToken
from tokenpost.settings.model import (
    POP_PREFIX,
    AlertSettings,
    AuthMethod,
    PopSetting,
    Provider,
    SmtpSetting,
)
from tokenpost.web.api import models
from tokenpost.web.api.models import NAME_PATTERN
from tokenpost.web.api.routing import api_router, error_responses
from tokenpost.web.visit import Visit, VisitDep

router = api_router()
_T = TypeVar("_T")

NamePath = Annotated[
    str, Path(pattern=NAME_PATTERN, description="The POP setting's or provider's name")
]
CHANGE_ERRORS = error_responses(404, 409, 502)


def _given(value: _T | None) -> _T | None:
    """What the CLI does with '': not set."""
    return None if value == "" else value


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def _kept_password(
    given: str | None, auth: AuthMethod, current: SmtpSetting | PopSetting | None
) -> Secret | None:
    """The password a setting keeps: the one given, else the stored one while the method stays
    password (or apop); none for the other methods."""
    if auth not in (AuthMethod.PASSWORD, AuthMethod.APOP):
        return None
    if given:
        return Secret(given)
    return current.password if current is not None and current.auth is auth else None


def _discarded(visit: Visit, found: Sequence[DiscardedToken]) -> list[models.Discarded]:
    return [
        models.Discarded(setting=d.setting_id, revoked=d.revoked, detail=show(d.detail, visit.lang))
        for d in found
    ]


# -- SMTP -----------------------------------------------------------------------------------------


def smtp_out(s: SmtpSetting) -> models.SmtpOut:
    return models.SmtpOut(
        server=s.server, port=s.port, security=s.security, timeout=s.timeout,
        sender_name=s.sender_name, sender_address=s.sender_address, auth=s.auth,
        provider=s.provider, account=s.account, has_password=s.password is not None,
        ca_file=s.ca_file,
    )  # fmt: skip


async def _smtp(visit: Visit) -> SmtpSetting:
    current = await visit.web.app.store.get_smtp()
    if current is None:
        raise NotFoundError("no SMTP setting: run 'tokenpost smtp set'")
    return current


@router.get("/settings/smtp", summary="The SMTP setting", responses=error_responses(404, 409))
async def get_smtp(visit: VisitDep) -> models.SmtpOut:
    return smtp_out(await _smtp(visit))


@router.put("/settings/smtp", summary="Set the SMTP setting", responses=CHANGE_ERRORS)
async def put_smtp(body: models.SmtpIn, visit: VisitDep) -> models.SmtpSaved:
    app = visit.web.app
    try:
        current = await app.store.get_smtp()
    except DamagedRecordError:  # overwritten whole, as by `smtp set`
        current = None
    oauth = body.auth is AuthMethod.OAUTH2
    setting = SmtpSetting(
        server=body.server, port=body.port, security=body.security, timeout=body.timeout,
        sender_name=body.sender_name, sender_address=body.sender_address, auth=body.auth,
        provider=_given(body.provider) if oauth else None,
        account=_given(body.account) if body.auth is not AuthMethod.NONE else None,
        password=_kept_password(body.password, body.auth, current),
        ca_file=_given(body.ca_file),
    )  # fmt: skip
    discarded = await app.settings.put_smtp(setting)
    return models.SmtpSaved(smtp=smtp_out(setting), discarded=_discarded(visit, discarded))


# -- POP ------------------------------------------------------------------------------------------


def pop_out(p: PopSetting) -> models.PopOut:
    return models.PopOut(
        id=p.setting_id, name=p.name, server=p.server, port=p.port, security=p.security,
        check_interval=p.check_interval, auth=p.auth, deliver_to=p.deliver_to,
        provider=p.provider, account=p.account, has_password=p.password is not None,
        ca_file=p.ca_file, leave_on_server=p.leave_on_server, command=p.command,
    )  # fmt: skip


@router.get("/settings/pop", summary="Every POP setting")
async def list_pop(visit: VisitDep) -> models.PopList:
    app = visit.web.app
    found = sorted(await app.store.list_pop(), key=lambda p: p.name)
    damaged = [
        d.record_id.removeprefix(POP_PREFIX)
        for d in await app.settings.damaged()
        if d.record_id.startswith(POP_PREFIX)
    ]
    return models.PopList(pop=[pop_out(p) for p in found], damaged=damaged)


async def _pop(visit: Visit, name: str) -> PopSetting:
    current = await visit.web.app.store.get_pop(name)
    if current is None:
        raise NotFoundError("no POP setting {name!r}", name=name)
    return current


@router.get("/settings/pop/{name}", summary="One POP setting", responses=error_responses(404, 409))
async def get_pop(name: NamePath, visit: VisitDep) -> models.PopOut:
    return pop_out(await _pop(visit, name))


@router.put("/settings/pop/{name}", summary="Add or set a POP setting", responses=CHANGE_ERRORS)
async def put_pop(name: NamePath, body: models.PopIn, visit: VisitDep) -> models.PopSaved:
    app = visit.web.app
    try:
        current = await app.store.get_pop(name)
    except DamagedRecordError:  # overwritten whole, as by `pop add`
        current = None
    oauth = body.auth is AuthMethod.OAUTH2
    setting = PopSetting(
        name=name, server=body.server, port=body.port, security=body.security,
        check_interval=body.check_interval, auth=body.auth, deliver_to=body.deliver_to,
        provider=_given(body.provider) if oauth else None,
        account=_given(body.account) if body.auth is not AuthMethod.NONE else None,
        password=_kept_password(body.password, body.auth, current),
        ca_file=_given(body.ca_file), leave_on_server=body.leave_on_server,
        command=_given(body.command),
    )  # fmt: skip
    discarded = await app.settings.put_pop(setting)
    return models.PopSaved(pop=pop_out(setting), discarded=_discarded(visit, discarded))


@router.delete(
    "/settings/pop/{name}", summary="Remove a POP setting and its token", responses=CHANGE_ERRORS
)
async def remove_pop(name: NamePath, visit: VisitDep) -> models.Removed:
    discarded = await visit.web.app.settings.remove_pop(name)
    return models.Removed(removed=POP_PREFIX + name, discarded=_discarded(visit, discarded))


# -- providers ------------------------------------------------------------------------------------


def _scopes(value: tuple[str, ...] | None) -> list[str] | None:
    return list(value) if value is not None else None


def provider_out(p: Provider) -> models.ProviderOut:
    return models.ProviderOut(
        name=p.name, preset=p.preset, client_id=p.client_id,
        has_client_secret=p.client_secret is not None, flow=p.flow,
        effective_flow=effective_flow(p), tenant=p.tenant, issuer=p.issuer,
        authorization_endpoint=p.authorization_endpoint, token_endpoint=p.token_endpoint,
        device_authorization_endpoint=p.device_authorization_endpoint,
        revocation_endpoint=p.revocation_endpoint, scope=_scopes(p.scope),
        smtp_scope=_scopes(p.smtp_scope), pop_scope=_scopes(p.pop_scope), ca_file=p.ca_file,
        redirect_uri=p.redirect_uri, proxy=p.proxy,
    )  # fmt: skip


@router.get("/settings/providers", summary="Every provider (without secrets)")
async def list_providers(visit: VisitDep) -> models.ProviderList:
    app = visit.web.app
    found = sorted(await app.store.list_providers(), key=lambda p: p.name)
    damaged = [
        d.record_id.removeprefix("provider:")
        for d in await app.settings.damaged()
        if d.record_id.startswith("provider:")
    ]
    return models.ProviderList(providers=[provider_out(p) for p in found], damaged=damaged)


@router.get(
    "/settings/providers/{name}",
    summary="One provider (without secrets)",
    responses=error_responses(404, 409),
)
async def get_provider(name: NamePath, visit: VisitDep) -> models.ProviderOut:
    current = await visit.web.app.store.get_provider(name)
    if current is None:
        raise NotFoundError("there is no provider {name!r}", name=name)
    return provider_out(current)


def _scope_list(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value else None


@router.put("/settings/providers/{name}", summary="Add or set a provider", responses=CHANGE_ERRORS)
async def put_provider(
    name: NamePath, body: models.ProviderIn, visit: VisitDep
) -> models.ProviderSaved:
    app = visit.web.app
    try:
        current = await app.store.get_provider(name)
    except DamagedRecordError:  # overwritten whole, as by `provider add`
        current = None
    secret = _secret(body.client_secret)
    if secret is None and current is not None and not body.remove_client_secret:
        secret = current.client_secret
    provider = Provider(
        name=name, preset=body.preset, client_id=body.client_id, client_secret=secret,
        flow=body.flow, tenant=_given(body.tenant), issuer=_given(body.issuer),
        authorization_endpoint=_given(body.authorization_endpoint),
        token_endpoint=_given(body.token_endpoint),
        device_authorization_endpoint=_given(body.device_authorization_endpoint),
        revocation_endpoint=_given(body.revocation_endpoint), scope=_scope_list(body.scope),
        smtp_scope=_scope_list(body.smtp_scope), pop_scope=_scope_list(body.pop_scope),
        ca_file=_given(body.ca_file), redirect_uri=_given(body.redirect_uri),
        proxy=_given(body.proxy),
    )  # fmt: skip
    discarded = await app.settings.put_provider(provider)
    return models.ProviderSaved(
        provider=provider_out(provider), discarded=_discarded(visit, discarded)
    )


@router.delete(
    "/settings/providers/{name}",
    summary="Remove a provider (refused while a setting uses it)",
    responses=CHANGE_ERRORS,
)
async def remove_provider(name: NamePath, visit: VisitDep) -> models.Removed:
    await visit.web.app.settings.remove_provider(name)
    return models.Removed(removed=name, discarded=[])


# -- alerts ---------------------------------------------------------------------------------------


def alerts_out(a: AlertSettings) -> models.Alerts:
    return models.Alerts(
        recipients=list(a.recipients),
        hook=a.hook,
        refresh_failing_after=a.refresh_failing_after,
        receive_failing_after=a.receive_failing_after,
    )


@router.get("/settings/alerts", summary="The alert settings", responses=error_responses(409))
async def get_alerts(visit: VisitDep) -> models.Alerts:
    return alerts_out(await visit.web.app.store.get_alerts())


@router.put("/settings/alerts", summary="Set the alert settings", responses=CHANGE_ERRORS)
async def put_alerts(body: models.Alerts, visit: VisitDep) -> models.Alerts:
    alerts = AlertSettings(
        recipients=tuple(body.recipients),
        hook=_given(body.hook),
        refresh_failing_after=body.refresh_failing_after,
        receive_failing_after=body.receive_failing_after,
    )
    await visit.web.app.settings.put_alerts(alerts)
    return alerts_out(alerts)
