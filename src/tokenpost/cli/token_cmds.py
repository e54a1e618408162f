"""`token get | status | delete`: the device panel's "Token" field and its two buttons."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.render import countdown, format_expiry, render_prompt, status_table

if TYPE_CHECKING:
    import asyncio

    from tokenpost.services.authorize import Prompt
    from tokenpost.services.status import SettingStatus
    from tokenpost.wiring import App


def _setting_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from tokenpost.settings.model import parse_setting_id

    try:
        return parse_setting_id(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.group()
def token() -> None:
    """Obtain, show and delete the tokens of OAuth 2.0 settings."""


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data), nl=True)
    sys.stdout.flush()


@token.command("get")
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_cli
def token_get(ctx: CliContext, setting: str, as_json: bool) -> None:
    """Obtain a token for SETTING: shows the code, address and QR code, then waits."""
    from tokenpost.errors import AuthorizationEndedError, OperationError

    _ = ctx.gettext
    ticker: list[asyncio.Task[None]] = []

    async def on_prompt(prompt: Prompt) -> None:
        if as_json:
            _emit(_prompt_json(prompt))
            return
        render_prompt(prompt, _)
        if sys.stderr.isatty():
            import asyncio

            ticker.append(asyncio.create_task(countdown(prompt.expires_at, _)))

    async def work(app: App) -> None:
        try:
            acquired = await app.authorizer.obtain(setting, on_prompt)
        except OperationError as error:
            if as_json:
                row = await _status_of(app, setting)
                _emit(_done_json(row, ctx.lang, reason=str(error)))
            if isinstance(error, AuthorizationEndedError):
                raise AuthorizationEndedError(
                    _("Authorization ended: {reason}").format(reason=error),
                    error=error.error,
                    description=error.description,
                ) from error
            raise
        finally:
            for task in ticker:
                task.cancel()
        if as_json:
            _emit(_done_json(await _status_of(app, setting), ctx.lang))
        else:
            click.echo(_("Token acquired.") + f" ({format_expiry(acquired.expires_at)})")

    ctx.run(work)


def _prompt_json(prompt: Prompt) -> dict[str, Any]:
    from tokenpost.services.authorize import DevicePrompt

    expires_in = max(0, int(prompt.expires_at - time.time()))
    if isinstance(prompt, DevicePrompt):
        data: dict[str, Any] = {
            "event": "authorization_required",
            "user_code": prompt.user_code,
            "verification_uri": prompt.verification_uri,
            "expires_in": expires_in,
        }
        if prompt.verification_uri_complete:
            data["verification_uri_complete"] = prompt.verification_uri_complete
        return data
    return {
        "event": "open_browser",
        "authorization_url": prompt.authorization_url,
        "expires_in": expires_in,
    }


async def _status_of(app: App, setting_id: str) -> SettingStatus:
    from tokenpost.services.status import status

    return next(row for row in await status(app.store) if row.setting_id == setting_id)


def _done_json(row: SettingStatus, lang: str, reason: str | None = None) -> dict[str, Any]:
    data = {"event": "done", **status_json(row, lang)}
    if reason is not None:
        data["reason"] = reason
    return data


def status_json(row: SettingStatus, lang: str) -> dict[str, Any]:
    """One setting in `token status --json` (a contract: keep the names stable)."""
    from tokenpost.i18n import state_label

    return {
        "id": row.setting_id,
        "auth": row.auth.value if row.auth else None,
        "state": row.state.value if row.state else None,
        "label": state_label(row.state, lang) if row.state else None,
        "account": row.account,
        "provider": row.provider,
        "expires_at": _iso(row.expires_at),
        "reason": row.reason,
        "user_code": row.user_code,
        "verification_uri": row.verification_uri,
        "refresh_failures": row.failures,
    }


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@token.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def token_status(ctx: CliContext, as_json: bool) -> None:
    """Every setting: state, account, provider, expiry, reason. Never waits for the network."""
    from tokenpost.services.status import status

    rows = ctx.read(status)
    if as_json:
        _emit({"format_version": 1, "settings": [status_json(r, ctx.lang) for r in rows]})
        return
    click.echo(status_table(rows, ctx.lang, ctx.gettext))


@token.command("delete")
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def token_delete(ctx: CliContext, setting: str, yes: bool) -> None:
    """Delete SETTING's token: revoke it at the provider where possible, always forget it here."""
    _ = ctx.gettext
    if not yes:
        click.confirm(_("Delete the token of {setting}?").format(setting=setting), abort=True)
    result = ctx.run(lambda app: app.deleter.delete(setting))
    click.echo(_("Token deleted.") + f" ({result.detail})")
