"""A setting's token: get it, follow it, finish or cancel its authorization, delete it.

- ``POST /api/v1/tokens/{setting_id}/authorization`` starts the provider's flow
  (`Authorizer.begin`) and answers its prompt at once: the device grant's code and link, or the
  browser flow's address. The service carries it: the device flow is completed by the scheduler
  of the running `serve`; a second POST while one is pending answers the pending one. An app-only
  provider answers the token's state (acquired) at once.
- ``GET …/authorization`` is what to poll: the state, and the prompt while one is pending.
- ``POST …/authorization/address`` finishes a browser flow with the address the browser ended on.
- ``DELETE …/authorization`` cancels it; a working token stays in force.
- ``DELETE /api/v1/tokens/{setting_id}`` deletes the token: revoked at the provider where it can
  be, always forgotten here; the state is then not_acquired.

Prompts go to administrators only (anyone could approve the device with their own mailbox).
Nothing here answers or logs a token, an authorization code, a state or a PKCE verifier.
"""

from __future__ import annotations

from tokenpost.errors import UsageError
from tokenpost.i18n import show, state_label
from tokenpost.isotime import iso_utc
from tokenpost.services.authorize import BrowserPrompt, DevicePrompt, Prompt
from tokenpost.web.api import models
from tokenpost.web.api.credentials import PrincipalDep
from tokenpost.web.api.routing import api_router, error_responses
from tokenpost.web.api.status import SettingIdPath, one_row, setting_status
from tokenpost.web.visit import Visit, VisitDep

router = api_router()

TOKEN_ERRORS = error_responses(404, 409, 502)


def prompt_out(prompt: Prompt, now: float) -> models.DevicePrompt | models.BrowserPrompt:
    expires_in = max(0, int(prompt.expires_at - now))
    if isinstance(prompt, DevicePrompt):
        return models.DevicePrompt(
            user_code=prompt.user_code,
            verification_uri=prompt.verification_uri,
            verification_uri_complete=prompt.verification_uri_complete,
            message=prompt.message,
            expires_at=iso_utc(prompt.expires_at),
            expires_in=expires_in,
        )
    assert isinstance(prompt, BrowserPrompt)  # noqa: S101 - the two kinds of Prompt
    return models.BrowserPrompt(
        authorization_url=prompt.authorization_url,
        redirect_uri=prompt.redirect_uri,
        can_paste=prompt.can_paste,
        expires_at=iso_utc(prompt.expires_at),
        expires_in=expires_in,
    )


async def _authorization(
    visit: Visit, who: PrincipalDep, setting_id: str, prompt: Prompt | None
) -> models.Authorization:
    row = await one_row(visit, setting_id)
    status = setting_status(row, who)
    state = row.status.state
    if state is None:  # no longer OAuth 2.0 (changed meanwhile): as the services say it
        raise UsageError(
            "{setting} uses authentication '{auth}', not oauth2: it has no token",
            setting=setting_id,
            auth=str(row.status.auth),
        )
    shown = prompt_out(prompt, visit.now) if prompt is not None and who.is_admin else None
    return models.Authorization(
        setting=setting_id,
        state=state.value,
        label=state_label(state, visit.lang),
        prompt=shown,
        status=status,
    )


@router.post(
    "/tokens/{setting_id}/authorization",
    summary="Get a token: start the provider's flow (or answer the pending one)",
    responses=TOKEN_ERRORS,
)
async def begin(
    setting_id: SettingIdPath, visit: VisitDep, who: PrincipalDep
) -> models.Authorization:
    result = await visit.web.app.authorizer.begin(setting_id)
    prompt = result if isinstance(result, DevicePrompt | BrowserPrompt) else None
    return await _authorization(visit, who, setting_id, prompt)


@router.get(
    "/tokens/{setting_id}/authorization",
    summary="The token's state, and the pending authorization's prompt",
    responses=error_responses(404, 409),
)
async def poll(
    setting_id: SettingIdPath, visit: VisitDep, who: PrincipalDep
) -> models.Authorization:
    prompt = await visit.web.app.authorizer.pending(setting_id)
    return await _authorization(visit, who, setting_id, prompt)


@router.post(
    "/tokens/{setting_id}/authorization/address",
    summary="Finish a browser authorization with the address the browser ended on",
    responses=TOKEN_ERRORS,
)
async def finish(
    setting_id: SettingIdPath, body: models.AddressIn, visit: VisitDep, who: PrincipalDep
) -> models.Authorization:
    await visit.web.app.authorizer.finish_browser(setting_id, body.address)
    return await _authorization(visit, who, setting_id, None)


@router.delete(
    "/tokens/{setting_id}/authorization",
    summary="Cancel the pending authorization (a working token stays in force)",
    responses=error_responses(404, 409),
)
async def cancel(
    setting_id: SettingIdPath, visit: VisitDep, who: PrincipalDep
) -> models.Authorization:
    await visit.web.app.authorizer.cancel(setting_id)
    return await _authorization(visit, who, setting_id, None)


@router.delete(
    "/tokens/{setting_id}",
    summary="Delete the token: revoked at the provider where it can be, forgotten here",
    responses=error_responses(404, 409),
)
async def delete(setting_id: SettingIdPath, visit: VisitDep, who: PrincipalDep) -> models.Deleted:
    result = await visit.web.app.deleter.delete(setting_id)
    row = await one_row(visit, setting_id)
    return models.Deleted(
        setting=setting_id,
        revoked=result.revoked,
        detail=show(result.detail, visit.lang),
        status=setting_status(row, who),
    )
