"""`tokenpost receive [NAME]`: check POP settings for new mail now, as the scheduler would.

One line per setting: what was fetched and deleted (stdout), or why receiving failed (stderr).
`--json` prints one object instead (a contract: keep the names stable):
``{"ok": …, "settings": [{"id": …, "ok": …, "fetched": …, "skipped": …, "deleted": …,
"failed": …, "recovered": …, "commands_run": …, "commands_failed": …, "commands_owed": …,
"error": …}]}`` (``error`` in English, or null).
Exit codes: 0 every setting received, 1 anything failed (receiving, or a per-message command),
2 bad usage (no such setting).

Each per-message command's outcome is a log line on stderr when it failed; the summary counts
them. The service's own "receiving failed" warning is silenced: the summary says it already.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import command
from tokenpost.text import translate

if TYPE_CHECKING:
    from gettext import NullTranslations

    from tokenpost.services.receive import ReceiveReport, SettingReport
    from tokenpost.wiring import App


@command()
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
        # Each failure is in the summary below; the service's own warning would repeat it. A
        # command's outcome is not in the summary: its warnings stay.
        logging.getLogger("tokenpost.receive").setLevel(logging.ERROR)
        logging.getLogger("tokenpost.receive.command").setLevel(logging.WARNING)

    async def work(app: App) -> ReceiveReport:
        return await app.receiver().receive(name, allow_plaintext=allow_plaintext)

    report = ctx.run(work)
    if as_json:
        click.echo(json.dumps(report_json(report)))
    elif not report.settings:
        click.echo(_("No POP settings: see 'tokenpost pop add'."))
    else:
        for setting in report.settings:
            click.echo(summary_line(setting, ctx.translations), err=not setting.ok)
    if not report.ok:
        # SystemExit, not click's Exit: click returns an Exit's code from `main` when it runs
        # with standalone_mode=False, as `tokenpost.cli.main` does, and that code is dropped.
        sys.exit(1)


def summary_line(report: SettingReport, translations: NullTranslations) -> str:
    """One setting's outcome, e.g. ``pop:fax: 3 fetched, 3 deleted, 3 commands run``."""
    _, ngettext = translations.gettext, translations.ngettext
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
    n = report.commands_run
    if n:
        parts.append(ngettext("{count} command run", "{count} commands run", n).format(count=n))
    n = report.commands_failed
    if n:
        parts.append(
            ngettext("{count} command failed", "{count} commands failed", n).format(count=n)
        )
    n = report.commands_owed
    if n:
        parts.append(
            ngettext("{count} command still owed", "{count} commands still owed", n).format(count=n)
        )
    line = f"{report.setting_id}: " + ", ".join(parts)
    if report.error is not None:
        reason = translate(report.error, _)
        line += "\n  " + _("Receiving failed: {reason}").format(reason=reason)
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
                "commands_run": s.commands_run,
                "commands_failed": s.commands_failed,
                "commands_owed": s.commands_owed,
                "error": None if s.error is None else str(s.error),
            }
            for s in report.settings
        ],
    }
