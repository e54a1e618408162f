"""`alerts set|show|clear` and the POP options, through the installed command as administrators
run it; and both in `config export|import`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli

pytestmark = pytest.mark.slow

DEFAULTS = {
    "recipients": [],
    "hook": None,
    "refresh_failing_after": 3600,
    "receive_failing_after": 3600,
}


def alerts_of(cli: Cli) -> dict[str, Any]:
    data = json.loads(cli.ok("alerts", "show", "--json"))
    assert data["format_version"] == 1
    return dict(data["alerts"])


def pop_of(cli: Cli, name: str) -> dict[str, Any]:
    rows = json.loads(cli.ok("pop", "list", "--json"))["pop"]
    return next(dict(row) for row in rows if row["name"] == name)


def add_plain_pop(cli: Cli, name: str, *extra: str) -> str:
    return cli.ok(
        "pop", "add", name, "--server", "pop.example.test", "--port", "995", "--security", "tls",
        "--check-interval", "300", "--auth", "none", "--deliver-to", "/var/spool/" + name, *extra,
    )  # fmt: skip


def test_alerts_set_show_and_clear(cli: Cli) -> None:
    assert alerts_of(cli) == DEFAULTS
    out = cli.ok(
        "alerts", "set", "--to", "ops@example.test", "--to", "desk@example.test",
        "--hook", "/usr/local/bin/notify --room 'ops 1'", "--refresh-failing-after", "600",
    )  # fmt: skip
    assert out == "Alert settings saved.\n"
    expected = {
        "recipients": ["ops@example.test", "desk@example.test"],
        "hook": "/usr/local/bin/notify --room 'ops 1'",
        "refresh_failing_after": 600,
        "receive_failing_after": 3600,
    }
    assert alerts_of(cli) == expected

    # Only the options given change; --hook '' removes the hook.
    cli.ok("alerts", "set", "--receive-failing-after", "7200", "--hook", "")
    assert alerts_of(cli) == {**expected, "hook": None, "receive_failing_after": 7200}
    assert cli.ok("alerts", "show").splitlines() == [
        "Recipients: ops@example.test, desk@example.test",
        "Hook: (not set)",
        "Alert when refreshing a token has failed for 600 s",
        "Alert when receiving has failed for 7200 s",
    ]
    assert cli.ok("alerts", "clear") == "Alert settings reset: no recipients, no hook.\n"
    assert alerts_of(cli) == DEFAULTS


def test_invalid_alerts_are_refused_with_every_problem(cli: Cli) -> None:
    cli.ok("alerts", "set", "--to", "ops@example.test")
    result = cli.run(
        "alerts", "set", "--to", "ops@example.test", "--to", "not an address",
        "--hook", "./notify", "--refresh-failing-after", "30",
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid settings for alerts" in result.stderr
    for field in ("recipients", "hook", "refresh_failing_after"):
        assert f"  {field}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert alerts_of(cli)["recipients"] == ["ops@example.test"]
    not_a_number = cli.run("alerts", "set", "--receive-failing-after", "1h")
    assert not_a_number.returncode == 2


def test_alerts_speak_german(cli: Cli) -> None:
    cli.ok("alerts", "set", "--to", "ops@example.test")
    assert cli.ok("--lang", "de", "alerts", "show").splitlines() == [
        "Empfänger: ops@example.test",
        "Hook-Befehl: (nicht gesetzt)",
        "Alarm, wenn das Aktualisieren eines Tokens 3600 s lang fehlschlägt",
        "Alarm, wenn der Empfang 3600 s lang fehlschlägt",
    ]
    assert cli.ok("--lang", "de", "alerts", "clear").startswith("Alarmeinstellungen")
    help_page = cli.ok("--lang", "de", "alerts", "set", "--help")
    assert "Die angegebenen Alarmeinstellungen ändern" in help_page
    assert "Ein Empfänger der Alarm-E-Mails" in help_page


def test_pop_options(cli: Cli) -> None:
    add_plain_pop(cli, "fax")
    assert (pop_of(cli, "fax")["leave_on_server"], pop_of(cli, "fax")["command"]) == (False, None)
    cli.ok("pop", "add", "fax", "--leave-on-server", "--command", "lp -d 'Fax 2'")
    row = pop_of(cli, "fax")
    assert (row["leave_on_server"], row["command"], row["port"]) == (True, "lp -d 'Fax 2'", 995)
    cli.ok("pop", "add", "fax", "--check-interval", "600")  # other changes keep both
    assert pop_of(cli, "fax")["leave_on_server"] is True
    cli.ok("pop", "add", "fax", "--delete-after-download", "--command", "")
    row = pop_of(cli, "fax")
    assert (row["leave_on_server"], row["command"]) == (False, None)

    bad = cli.run("pop", "add", "fax", "--command", "scripts/print 'x")
    assert bad.returncode == 2
    assert "command: " in bad.stderr
    assert "scripts/print" not in bad.stderr  # a command may hold a password: never echoed


def test_config_carries_alerts_and_pop_options(cli: Cli, tmp_path: Path) -> None:
    add_plain_pop(cli, "print", "--leave-on-server", "--command", "/usr/bin/lp")
    cli.ok("alerts", "set", "--to", "ops@example.test", "--hook", "notify")
    exported = cli.ok("config", "export")
    doc = tomllib.loads(exported)
    assert doc["pop"]["print"]["leave_on_server"] is True
    assert doc["pop"]["print"]["command"] == "/usr/bin/lp"
    assert doc["alerts"] == {**DEFAULTS, "recipients": ["ops@example.test"], "hook": "notify"}

    edited = exported.replace('hook = "notify"\n', "").replace("= 3600", "= 900", 1)
    path = tmp_path / "settings.toml"
    path.write_text(edited)
    cli.ok("config", "import", str(path))
    assert alerts_of(cli)["hook"] is None
    assert alerts_of(cli)["refresh_failing_after"] == 900

    # A file without [alerts] leaves them; a bad [alerts] changes nothing.
    path.write_text(edited[: edited.index("[alerts]")])
    cli.ok("config", "import", str(path))
    assert alerts_of(cli)["refresh_failing_after"] == 900
    path.write_text(edited.replace("= 900", "= 5"))
    result = cli.run("config", "import", str(path))
    assert result.returncode == 2
    assert "alerts.refresh_failing_after" in result.stderr
    assert alerts_of(cli)["refresh_failing_after"] == 900

    other = Cli(tmp_path / "other-home")
    path.write_text(exported)
    other.ok("config", "import", str(path))
    assert other.ok("config", "export") == exported


def test_help_lists_the_alerts_commands(cli: Cli) -> None:
    assert "alerts" in cli.ok("--help")
    group_help = cli.ok("alerts", "--help")
    for name in ("set", "show", "clear"):
        assert name in group_help
    pop_help = cli.ok("pop", "add", "--help")
    assert "--leave-on-server / --delete-after-download" in pop_help
    assert "--command" in pop_help
