"""`tokenpost serve` as the device runs it: POP schedules against Dovecot, health lines as JSON,
alerts when a token becomes invalid, and a graceful SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens, wait_for
from test_receive_dovecot import message, message_ids, oauth_pop

from dovecot_support import Dovecot
from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def serve_process(cli: Cli, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tokenpost", "serve", "--no-web", "--log-format", "json", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(),
    )


def terminate(process: subprocess.Popen[str], cli: Cli) -> tuple[int, list[dict[str, Any]]]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    cli.outputs += [out, err]
    return process.returncode, [json.loads(line) for line in err.splitlines() if line.strip()]


def recording_hook(tmp_path: Path) -> tuple[Path, str]:
    """A hook command that appends its arguments as one JSON line to a file."""
    calls = tmp_path / "hook-calls.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, sys\n"
        f"with open({str(calls)!r}, 'a') as out:\n"
        "    out.write(json.dumps(sys.argv[1:]) + '\\n')\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return calls, f"{sys.executable} {script}"


def hook_events(calls: Path) -> list[list[str]]:
    if not calls.exists():
        return []
    return [json.loads(line)[:2] for line in calls.read_text(encoding="utf-8").splitlines()]


def test_serve_receives_on_schedule_logs_health_and_stops_gracefully(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    folder = tmp_path / "fax"
    oauth_pop(cli, sandbox, dovecot_peer, folder)
    for n in range(1, 4):
        dovecot_peer.add_message(ACCOUNT, message(n))

    serve = serve_process(cli)
    try:
        wait_for(
            lambda: (folder / "new").is_dir() and len(message_ids(folder)) == 3,
            timeout=60,
            what="three messages received by serve",
        )
        wait_for(lambda: dovecot_peer.maildir_count(ACCOUNT) == 0, timeout=30, what="deleted")
    finally:
        code, lines = terminate(serve, cli)

    assert code == 0, lines
    assert message_ids(folder) == [f"<fax-{n}@example.test>" for n in range(1, 4)]
    health = [line for line in lines if line["msg"].startswith("health ")]
    assert {"setting": "pop:fax", "state": "acquired"}.items() <= health[0].items()
    # Times in one format: ISO 8601 UTC, exactly as `token status --json` writes them.
    assert health[0]["expires_at"] == cli.status()["pop:fax"]["expires_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", health[0]["next_check"])
    assert any(line["msg"] == "service stopped" for line in lines)
    assert all(line["level"] in {"debug", "info", "warning"} for line in lines), lines
    assert leaked_tokens(cli) == []


def test_serve_alerts_through_the_hook_when_the_smtp_token_becomes_invalid(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    calls, hook = recording_hook(tmp_path)
    sandbox.control.config(device_interval=0, access_token_lifetime=3)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    cli.ok("alerts", "set", "--to", "admin@example.test", "--hook", hook)
    acquire_by_device_flow(cli, sandbox)
    sandbox.control.revoke_user(ACCOUNT)

    serve = serve_process(cli, "--refresh-margin", "1")
    try:
        wait_for(
            lambda: ["token_invalid", "smtp"] in hook_events(calls),
            timeout=60,
            what="the token_invalid hook",
        )
    finally:
        code, lines = terminate(serve, cli)

    assert code == 0, lines
    assert cli.status()["smtp"]["state"] == "invalid"
    [invalid] = [line for line in lines if line.get("event") == "token_invalid"]  # said once
    assert (invalid["setting"], invalid["level"]) == ("smtp", "warning")
    assert "invalid_grant" in invalid["msg"]
    # The alert mail would need the SMTP token that just became invalid: the log carries it.
    warnings = [line["msg"] for line in lines if line["level"] == "warning"]
    assert any("alert" in text and "smtp" in text for text in warnings), warnings
    assert leaked_tokens(cli) == []
