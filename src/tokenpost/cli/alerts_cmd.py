"""`alerts set | show | clear`: the device's "E-mail Alert and Status" settings.

Alert mail goes to the recipients through the SMTP setting; the hook is a command run for every
event. `set` changes only the options given; `clear` restores the defaults (no recipients, no
hook, one hour before a failing refresh or receive alerts).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import group
from tokenpost.settings.model import AlertSettings

if TYPE_CHECKING:
    from tokenpost.wiring import App


@group()
def alerts() -> None:
    """Who hears about token and receive trouble: alert mail recipients and a hook command."""


@alerts.command("set")
@click.option(
    "--to",
    "recipients",
    multiple=True,
    metavar="ADDRESS",
    help="An alert mail recipient; repeat for more (up to 20). Replaces the list.",
)
@click.option(
    "--hook",
    metavar="COMMAND",
    help="Run for every event, split like a shell line (no shell), with the event name, setting"
    " and detail appended; '' removes it.",
)
@click.option(
    "--refresh-failing-after",
    type=int,
    metavar="SECONDS",
    help="Alert when refreshing a token has failed this long (60-604800).",
)
@click.option(
    "--receive-failing-after",
    type=int,
    metavar="SECONDS",
    help="Alert when receiving on a POP setting has failed this long (60-604800).",
)
@pass_cli
def alerts_set(
    ctx: CliContext,
    recipients: tuple[str, ...],
    hook: str | None,
    refresh_failing_after: int | None,
    receive_failing_after: int | None,
) -> None:
    """Change the given alert settings; the others stay as they are."""
    _ = ctx.gettext

    def changed(current: AlertSettings) -> AlertSettings:
        return AlertSettings(
            recipients=recipients or current.recipients,  # click gives () when --to is absent
            hook=current.hook if hook is None else hook or None,
            refresh_failing_after=_given(refresh_failing_after, current.refresh_failing_after),
            receive_failing_after=_given(receive_failing_after, current.receive_failing_after),
        )

    async def work(app: App) -> None:
        await app.settings.put_alerts(changed(await app.store.get_alerts()))

    ctx.run(work)
    click.echo(_("Alert settings saved."))


def _given(option: int | None, current: int) -> int:
    return current if option is None else option


@alerts.command("show")
@click.option("--json", "as_json", is_flag=True, help="The alert settings as one JSON document.")
@pass_cli
def alerts_show(ctx: CliContext, as_json: bool) -> None:
    """Show the alert settings."""
    current = ctx.read(lambda store: store.get_alerts())
    if as_json:
        click.echo(json.dumps({"format_version": 1, "alerts": alerts_json(current)}))
        return
    _ = ctx.gettext
    none = _("(not set)")
    click.echo(_("Recipients: {addresses}").format(addresses=", ".join(current.recipients) or none))
    click.echo(_("Hook: {command}").format(command=current.hook or none))
    click.echo(
        _("Alert when refreshing a token has failed for {seconds} s").format(
            seconds=current.refresh_failing_after
        )
    )
    click.echo(
        _("Alert when receiving has failed for {seconds} s").format(
            seconds=current.receive_failing_after
        )
    )


def alerts_json(a: AlertSettings) -> dict[str, object]:
    """The alert settings as `alerts show --json` prints them (a contract: keep the keys)."""
    return {
        "recipients": list(a.recipients),
        "hook": a.hook,
        "refresh_failing_after": a.refresh_failing_after,
        "receive_failing_after": a.receive_failing_after,
    }


@alerts.command("clear")
@pass_cli
def alerts_clear(ctx: CliContext) -> None:
    """Restore the defaults: no recipients, no hook, alerts after one hour of failures."""
    _ = ctx.gettext
    ctx.run(lambda app: app.settings.put_alerts(AlertSettings()))
    click.echo(_("Alert settings reset: no recipients, no hook."))
