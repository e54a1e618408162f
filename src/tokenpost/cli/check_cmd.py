"""`tokenpost check smtp|pop:NAME`: the device's connection test, step by step.

Each step is printed as it completes; on the first failure the test stops and says what the
administrator must do. `--json` prints one object instead (a contract: keep the names stable):
``{"setting": …, "ok": …, "steps": [{"step": …, "ok": …, "detail": …}], "fix": …}``.
Exit codes: 0 every step passed, 1 a step failed, 2 bad usage or invalid settings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import command

if TYPE_CHECKING:
    from tokenpost.services.check import CheckReport, Step
    from tokenpost.wiring import App


def _setting_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from tokenpost.i18n import active
    from tokenpost.settings.model import parse_setting_id

    try:
        return parse_setting_id(value)
    except ValueError:
        _ = active().gettext
        message = _("{value!r} is not a setting: give smtp or pop:NAME").format(value=value)
        raise click.BadParameter(message) from None


@command()
@click.argument("setting", callback=_setting_id, metavar="smtp|pop:NAME")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the steps and the fix.")
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Allow security none for a mail server on loopback (test or relay servers only).",
)
@pass_cli
def check(ctx: CliContext, setting: str, as_json: bool, allow_plaintext: bool) -> None:
    """Connection test for SETTING: connect, TLS, greeting, token, authenticate, quit."""
    _ = ctx.gettext

    def on_step(step: Step) -> None:
        if not as_json:
            click.echo(step_line(step, _))
            sys.stdout.flush()

    async def work(app: App) -> CheckReport:
        checker = app.checker(ctx.lang)
        return await checker.check(setting, allow_plaintext=allow_plaintext, on_step=on_step)

    report = ctx.run(work)
    if as_json:
        click.echo(json.dumps(report_json(report)))
    elif report.ok:
        click.echo(_("Connection test passed."))
    else:
        failed = step_label(report.steps[-1], _)
        click.echo(_("Connection test failed at: {step}").format(step=failed), err=True)
        if report.fix:
            click.echo(_("What to do: {fix}").format(fix=report.fix), err=True)
    if not report.ok:
        # click returns (not raises) an Exit's code outside standalone mode: exit here.
        sys.exit(report.exit_code)


def step_line(step: Step, _: Callable[[str], str]) -> str:
    """One aligned line: outcome, the step's label, its detail."""
    outcome = _("ok") if step.ok else _("FAILED")
    return f"[{outcome:^6}] {step_label(step, _):<18} {step.detail}".rstrip()


def step_label(step: Step, _: Callable[[str], str]) -> str:
    from tokenpost.services.check import STEP_LABELS

    label = STEP_LABELS.get(step.step)
    return _(label) if label is not None else step.step


def report_json(report: CheckReport) -> dict[str, Any]:
    """`check --json` (a contract)."""
    return {
        "setting": report.setting_id,
        "ok": report.ok,
        "steps": [{"step": s.step, "ok": s.ok, "detail": s.detail} for s in report.steps],
        "fix": report.fix,
    }
