"""`token get | status | delete | refresh | show`: the device panel's "Token" field and its two
buttons, plus what scripts and other mail tools need.

Exit codes beyond the common ones: `token status` exits `NOT_IN_FORCE_EXIT` (3) when a token it
shows serves no mail, so a script can tell "a token needs attention" from "the store could not be
read" (1). `token get` ends with 130 when interrupted (Ctrl-C, SIGTERM, SIGHUP): its flow is
abandoned, and the token it was replacing stays in force.

`token get --json` prints one JSON object per line: first `authorization_required` (device flow)
or `open_browser` (browser flow: also `redirect_uri`, the address the browser comes back to, and
`can_paste`); in the browser flow then perhaps `redirect_hint` (nothing came back: `hint`,
`redirect_uri`, `registered_redirect_uri`, `expires_in`) and `address_refused` (a pasted line was
not the redirect: `reason`); last `done`. In the browser flow standard input is read, with or
without --json: a line holding the address the browser ended on (a browser on another device)
completes the flow like the redirect to the listener. Neither the code nor the state is printed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.render import countdown, format_expiry, render_prompt, status_table
from tokenpost.cli.translated import group

if TYPE_CHECKING:
    import asyncio

    from tokenpost.errors import TokenpostError
    from tokenpost.ports import FlowOwners
    from tokenpost.services.authorize import Prompt
    from tokenpost.services.browser_wait import BrowserHooks, RedirectHint
    from tokenpost.services.status import SettingStatus
    from tokenpost.wiring import App

NOT_IN_FORCE_EXIT: Final = 3
"""`token status`: a token shown serves no mail (not acquired, waiting without a previous token,
or invalid)."""

INTERRUPTED_EXIT: Final = 130


def _setting_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from tokenpost.settings.model import parse_setting_id

    if value is None:
        return None
    try:
        return parse_setting_id(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@group()
def token() -> None:
    """Obtain, show, refresh and delete the tokens of OAuth 2.0 settings."""


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data), nl=True)
    sys.stdout.flush()


def _owners(ctx: CliContext) -> FlowOwners:
    from tokenpost.wiring import flow_owners

    return flow_owners(ctx.home, os.environ)


def _read_status(ctx: CliContext, setting: str | None) -> list[SettingStatus]:
    """The status rows (of `setting` only, when given), pending flows judged as of now."""
    from tokenpost.services.status import status

    owners = _owners(ctx)
    return ctx.read(lambda store: status(store, now=time.time(), owners=owners, setting_id=setting))


# -- token get -------------------------------------------------------------------------------------


@token.command("get")
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--yes",
    is_flag=True,
    help="Replace a working token without asking (it stays in force until the new one arrives).",
)
@pass_cli
def token_get(ctx: CliContext, setting: str, as_json: bool, yes: bool) -> None:
    """Obtain a token for SETTING: shows the code, address and QR code, then waits.

    A token that works keeps serving mail until the new one is granted; if the authorization
    ends without a token (denied, expired, interrupted), it stays in force."""
    if not yes:
        _confirm_replacing(ctx, setting, as_json=as_json)
    ctx.run(lambda app: _obtain(app, ctx, setting, as_json=as_json))


def _confirm_replacing(ctx: CliContext, setting: str, *, as_json: bool) -> None:
    """Ask before replacing a working token; refuse without a terminal to ask on."""
    from tokenpost.errors import UsageError

    _ = ctx.gettext
    rows = _read_status(ctx, setting)
    if not rows or not rows[0].in_force:
        return
    expires = format_expiry(_in_force_until(rows[0]))
    if as_json or not sys.stdin.isatty():
        raise UsageError(
            "{setting} has a working token (valid until {expires}): pass --yes to obtain a new"
            " one (the current token stays in force until the new one is granted)",
            setting=setting,
            expires=expires,
        )
    from tokenpost.cli.prompts import confirm

    confirm(
        _(
            "{setting} has a working token (valid until {expires}). Obtain a new one? The current"
            " token stays in force until the new one is granted."
        ).format(setting=setting, expires=expires),
        abort=True,
    )


async def _obtain(app: App, ctx: CliContext, setting: str, *, as_json: bool) -> None:
    """Run the flow; SIGINT, SIGTERM and SIGHUP cancel it (the flow is abandoned, the previous
    token restored) and end the command with exit 130."""
    import asyncio
    import signal

    from tokenpost.errors import AuthorizationEndedError, OperationError

    _ = ctx.gettext
    ticker: list[asyncio.Task[None]] = []
    interrupted: list[int] = []
    task = asyncio.current_task()
    assert task is not None  # noqa: S101 - called from a task
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def on_signal(signum: int) -> None:
        interrupted.append(signum)
        task.cancel()

    async def on_prompt(prompt: Prompt) -> None:
        if as_json:
            _emit(_prompt_json(prompt))
            return
        render_prompt(prompt, _)
        if sys.stderr.isatty() and not _pasting_on_terminal(prompt):
            ticker.append(asyncio.create_task(countdown(prompt.expires_at, _)))

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        hooks = _browser_hooks(ctx, as_json=as_json, ticking=ticker)
        acquired = await app.authorizer.obtain(setting, on_prompt, hooks)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        while task.uncancel():
            pass
        await _cancelled(app, ctx, setting, as_json=as_json)
        raise click.exceptions.Exit(INTERRUPTED_EXIT) from None
    except OperationError as error:
        row = await _status_of(app, setting)
        if as_json:
            _emit(_done_json(row, ctx.lang, reason=error))
        if isinstance(error, AuthorizationEndedError):
            raise _ended(error, row) from error
        raise
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        for tick in ticker:
            tick.cancel()
    if as_json:
        _emit(_done_json(await _status_of(app, setting), ctx.lang))
    else:
        click.echo(
            _("Token acquired (valid until {expires}).").format(
                expires=format_expiry(acquired.expires_at)
            )
        )


def _pasting_on_terminal(prompt: Prompt) -> bool:
    """True when an address may be pasted on this terminal: a countdown rewriting the line
    would garble what is pasted, so there is none then."""
    from tokenpost.services.authorize import BrowserPrompt

    return isinstance(prompt, BrowserPrompt) and prompt.can_paste and sys.stdin.isatty()


def _browser_hooks(ctx: CliContext, *, as_json: bool, ticking: list[Any]) -> BrowserHooks:
    """Standard input for pasted addresses (also with --json, for a program that relays them);
    hints and refused pastes as JSON events, or on stderr."""
    from tokenpost.cli.pasted_lines import stdin_lines
    from tokenpost.i18n import show
    from tokenpost.services.browser_wait import BrowserHooks

    _ = ctx.gettext

    def on_hint(hint: RedirectHint) -> None:
        if as_json:
            _emit(
                {
                    "event": "redirect_hint",
                    "redirect_uri": hint.redirect_uri,
                    "registered_redirect_uri": hint.registered,
                    "expires_in": max(0, int(hint.expires_at - time.time())),
                    "hint": show(hint.text, ctx.lang),
                }
            )
        else:
            _notice(show(hint.text, ctx.lang), after_countdown=bool(ticking))

    def on_refused(error: TokenpostError) -> None:
        if as_json:
            _emit({"event": "address_refused", "reason": show(error, ctx.lang)})
        else:
            message = _("Address not accepted: {reason}").format(reason=error.translate(_))
            _notice(message, after_countdown=bool(ticking))

    return BrowserHooks(pasted=stdin_lines(), on_hint=on_hint, on_refused=on_refused)


def _notice(text: str, *, after_countdown: bool) -> None:
    """A line on stderr while `token get` waits; below the countdown's line when it runs. The
    terminal may be gone (a dropped SSH session): that is no reason to fail."""
    from contextlib import suppress

    with suppress(OSError):
        if after_countdown:
            click.echo(err=True)
        click.echo(text, err=True)


def _ended(error: Exception, row: SettingStatus) -> Exception:
    """The error `token get` ends with when the authorization ended without a token."""
    from tokenpost.errors import AuthorizationEndedError

    details = {
        "error": getattr(error, "error", ""),
        "description": getattr(error, "description", ""),
    }
    if row.in_force:
        return AuthorizationEndedError(
            "Authorization ended: {reason}. The previous token stays in force (valid until"
            " {expires}).",
            reason=error,
            expires=format_expiry(_in_force_until(row)),
            **details,
        )
    return AuthorizationEndedError("Authorization ended: {reason}", reason=error, **details)


async def _cancelled(app: App, ctx: CliContext, setting: str, *, as_json: bool) -> None:
    """Say that the authorization was cancelled and what is in force now. The terminal may be
    gone (a dropped SSH session): nothing here may fail for that."""
    _ = ctx.gettext
    row = await _status_of(app, setting)
    lines = [_("Authorization cancelled.")]
    if row.in_force:
        lines.append(
            _("The previous token stays in force (valid until {expires}).").format(
                expires=format_expiry(_in_force_until(row))
            )
        )
    try:
        if as_json:
            _emit(_done_json(row, ctx.lang, reason=_("Authorization cancelled.")))
        click.echo(" ".join(lines), err=True)
    except OSError:
        pass


def _in_force_until(row: SettingStatus) -> float | None:
    from tokenpost.tokens.state_id import StateId

    return row.expires_at if row.state is StateId.ACQUIRED else row.previous_expires_at


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
        "redirect_uri": prompt.redirect_uri,
        "can_paste": prompt.can_paste,
    }


async def _status_of(app: App, setting_id: str) -> SettingStatus:
    from tokenpost.services.status import status

    now = app.clock.now()
    [row] = await status(app.store, now=now, owners=app.authorizer.owners, setting_id=setting_id)
    return row


def _done_json(row: SettingStatus, lang: str, reason: object = None) -> dict[str, Any]:
    from tokenpost.i18n import show

    data = {"event": "done", **status_json(row, lang)}
    if reason is not None:
        data["reason"] = show(reason, lang)
    return data


# -- token status ----------------------------------------------------------------------------------


def status_json(row: SettingStatus, lang: str) -> dict[str, Any]:
    """One setting in `token status --json` (a contract: keep the names stable; fields are only
    ever added)."""
    from tokenpost.i18n import show, state_label

    return {
        "id": row.setting_id,
        "auth": row.auth.value if row.auth else None,
        "state": row.state.value if row.state else None,
        "label": state_label(row.state, lang) if row.state else None,
        "account": row.account,
        "provider": row.provider,
        "expires_at": _iso(row.expires_at),
        "reason": None if row.reason is None else show(row.reason, lang),
        "user_code": row.user_code,
        "verification_uri": row.verification_uri,
        "refresh_failures": row.failures,
        "previous_state": row.previous_state.value if row.previous_state else None,
        "previous_expires_at": _iso(row.previous_expires_at),
        "previous_reason": None if row.previous_reason is None else show(row.previous_reason, lang),
        "in_force": row.in_force if row.state else None,
    }


def _iso(when: float | None) -> str | None:
    from tokenpost.isotime import iso_utc

    return None if when is None else iso_utc(when)


@token.command("status")
@click.argument("setting", callback=_setting_id, metavar="[smtp|pop:NAME]", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on one line.")
@pass_cli
def token_status(ctx: CliContext, setting: str | None, as_json: bool) -> None:
    """Every setting (or only SETTING): state, account, provider, expiry, reason. Never waits
    for the network. Exits 3 when a token shown serves no mail (not acquired, invalid, or
    waiting without a previous token), 1 when the store cannot be read."""
    rows = _read_status(ctx, setting)
    if as_json:
        _emit({"format_version": 1, "settings": [status_json(r, ctx.lang) for r in rows]})
    else:
        click.echo(status_table(rows, ctx.lang, ctx.gettext))
    if any(row.state is not None and not row.in_force for row in rows):
        click.get_current_context().exit(NOT_IN_FORCE_EXIT)


# -- token delete, refresh, show -------------------------------------------------------------------


@token.command("delete")
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def token_delete(ctx: CliContext, setting: str, yes: bool) -> None:
    """Delete SETTING's token: revoke it at the provider where possible, always forget it here."""
    from tokenpost.cli.prompts import confirm
    from tokenpost.i18n import show

    _ = ctx.gettext
    if not yes:
        confirm(_("Delete the token of {setting}?").format(setting=setting), abort=True)
    result = ctx.run(lambda app: app.deleter.delete(setting))
    click.echo(_("Token deleted ({detail}).").format(detail=show(result.detail, ctx.lang)))


@token.command("refresh")
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@pass_cli
def token_refresh(ctx: CliContext, setting: str) -> None:
    """Refresh SETTING's token now, even if it is not due yet, and show its new expiry."""
    _ = ctx.gettext
    expires_at = ctx.run(lambda app: _refresh(app, setting))
    click.echo(
        _("Token refreshed (valid until {expires}).").format(expires=format_expiry(expires_at))
    )


async def _refresh(app: App, setting: str) -> float:
    from tokenpost.errors import OperationError, TokenpostError
    from tokenpost.services.refresh import TokenUnavailableError

    try:
        acquired = await app.refresher.refresh_now(setting)
    except TokenUnavailableError:
        raise
    except TokenpostError as error:
        raise OperationError(
            "refreshing the token of {setting} failed: {reason}. The token is kept and"
            " refreshed again later; 'tokenpost check {setting}' shows where the connection"
            " to the provider fails",
            setting=setting,
            reason=error,
        ) from error
    if app.refresher.held_state(setting) is not None and await app.refresher.close():
        # The new token could not be saved (said on stderr, with the fix): not a success.
        raise click.exceptions.Exit(1)
    return acquired.expires_at


@token.command("show")
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@click.option("--yes", is_flag=True, help="Print the token even when the output is a terminal.")
@pass_cli
def token_show(ctx: CliContext, setting: str, yes: bool) -> None:
    """Print a fresh access token of SETTING and nothing else (refreshed first when due), for
    mail tools such as msmtp, fetchmail or Postfix (passwordeval). This prints a SECRET: whoever
    sees the output can use the mailbox until the token expires. Refused when the output is a
    terminal, unless --yes."""
    from tokenpost.errors import UsageError

    if sys.stdout.isatty() and not yes:
        raise UsageError(
            "'token show' prints a secret access token and the output is a terminal: pipe it"
            " into the tool that needs it, or pass --yes to print it here"
        )
    token_value = ctx.run(lambda app: app.refresher.access_token(setting))
    click.echo(token_value.reveal())
