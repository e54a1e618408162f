"""`tokenpost receive [NAME]`: check POP settings for new mail now, as the scheduler would.

One line per setting: what was fetched and deleted (stdout), or why receiving failed (stderr).
`--json` prints one object instead (a contract: keep the names stable):
``{"ok": …, "settings": [{"id": …, "ok": …, "fetched": …, "skipped": …, "deleted": …,
"failed": …, "recovered": …, "commands_failed": …, "error": …}]}``.
Exit codes: 0 every setting received, 1 anything failed, 2 bad usage (no such setting).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli

if TYPE_CHECKING:
    from tokenpost.services.receive import ReceiveReport, SettingReport
    from tokenpost.wiring import App


@click.command()
@click.argument("name", required=False, metavar="[NAME]")
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Allow security none for a server on loopback (local test servers only).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every setting.")
@pass_cli
def receive(ctx: CliContext, name: str | None, allow_plaintext: bool, as_json: bool) -> None:
    """Fetch new mail now for the POP setting NAME (fax or pop:fax), or for every POP setting."""
    _ = ctx.gettext
    if not ctx.debug:
        # Each failure is in the summary below; the service's own warning would repeat it.
        logging.getLogger("tokenpost.receive").setLevel(logging.ERROR)

    async def work(app: App) -> ReceiveReport:
        return await app.receiver().receive(name, allow_plaintext=allow_plaintext)

    report = ctx.run(work)
    if as_json:
        click.echo(json.dumps(report_json(report)))
    elif not report.settings:
        click.echo(_("No POP settings: see 'tokenpost pop add'."))
    else:
        for setting in report.settings:
            click.echo(summary_line(setting, _), err=not setting.ok)
    if not report.ok:
        # SystemExit, not click's Exit: click returns an Exit's code from `main` when it runs
        # with standalone_mode=False, as `tokenpost.cli.main` does, and that code is dropped.
        sys.exit(1)


def summary_line(report: SettingReport, _: Callable[[str], str]) -> str:
    """One setting's outcome, e.g. ``pop:fax: 3 fetched, 3 deleted``."""
    parts = [
        _("{count} fetched").format(count=report.fetched),
        _("{count} deleted").format(count=report.deleted),
    ]
    if report.skipped:
        parts.append(_("{count} received before").format(count=report.skipped))
    if report.recovered:
        parts.append(_("{count} recovered").format(count=report.recovered))
    if report.failed:
        parts.append(_("{count} left on the server").format(count=report.failed))
    if report.commands_failed:
        parts.append(_("{count} commands failed").format(count=report.commands_failed))
    line = f"{report.setting_id}: " + ", ".join(parts)
    if report.error is not None:
        line += "\n  " + _("Receiving failed: {reason}").format(reason=report.error)
    return line


def report_json(report: ReceiveReport) -> dict[str, Any]:
    """`receive --json` (a contract)."""
    return {
        "ok": report.ok,
        "settings": [
            {
                "id": s.setting_id,
                "ok": s.ok,
                "fetched": s.fetched,
                "skipped": s.skipped,
                "deleted": s.deleted,
                "failed": s.failed,
                "recovered": s.recovered,
                "commands_failed": s.commands_failed,
                "error": s.error,
            }
            for s in report.settings
        ],
    }
