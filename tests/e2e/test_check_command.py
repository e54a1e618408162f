"""`tokenpost check` as an administrator runs it, against the sandbox SMTP server and a private
Dovecot, with tokens from the sandbox authorization server; and the alert hook run by a
one-shot command before it exits."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens

from dovecot_support import Dovecot
from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox

pytestmark = pytest.mark.slow

SMTP_STEPS = [
    "settings", "encryption", "connect", "greeting", "ehlo", "tls", "ehlo", "token", "auth",
    "quit",
]  # fmt: skip


def set_sandbox_smtp(cli: Cli, peer: SmtpSandbox, *, ca_file: Path | None) -> None:
    ca = ["--ca-file", str(ca_file)] if ca_file is not None else []
    cli.ok(
        "smtp", "set", "--server", peer.host, "--port", str(peer.ready.starttls_port),
        "--security", "starttls", "--timeout", "10", "--sender-name", "Scanner",
        "--sender-address", "scanner@example.test", "--auth", "oauth2", "--provider", "sbx",
        "--account", ACCOUNT, *ca,
    )  # fmt: skip


def ready_smtp(cli: Cli, sandbox: Sandbox, peer: SmtpSandbox, *, ca: bool = True) -> None:
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    set_sandbox_smtp(cli, peer, ca_file=peer.ready.ca_file if ca else None)
    acquire_by_device_flow(cli, sandbox)


def check_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli.run("check", *args, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, dict(json.loads(result.stdout))


def failed_step(report: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = report["steps"][-1]
    assert not step["ok"]
    assert all(s["ok"] for s in report["steps"][:-1])
    return step


def test_check_smtp_passes_every_step(cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox) -> None:
    ready_smtp(cli, sandbox, smtp_peer)

    text = cli.run("check", "smtp")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "Settings complete" in lines[0]
    assert "Encryption policy" in lines[1]
    assert "Connect" in lines[2]
    assert all(line.startswith("[  ok  ]") for line in lines[:-1])
    assert "Connection test passed." in text.stdout

    code, report = check_json(cli, "smtp")
    assert code == 0
    assert report["setting"] == "smtp"
    assert report["ok"] is True
    assert report["fix"] is None
    assert [s["step"] for s in report["steps"]] == SMTP_STEPS
    assert (
        smtp_peer.auth_count("XOAUTH2", "success") + smtp_peer.auth_count("OAUTHBEARER", "success")
        == 2
    )
    assert smtp_peer.messages() == []  # the test sends nothing
    assert leaked_tokens(cli) == []


def test_check_smtp_policy_refusal_shows_the_fix(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    ready_smtp(cli, sandbox, smtp_peer)
    smtp_peer.set_knobs(style="microsoft", policy={ACCOUNT: "tenant"})

    code, report = check_json(cli, "smtp")

    assert code == 1
    step = failed_step(report)
    assert step["step"] == "auth"
    assert "5.7.139" in step["detail"]
    assert report["fix"]
    assert "tokenpost token" not in report["fix"]  # a tenant setting, not a token problem
    assert cli.status()["smtp"]["state"] == "acquired"
    result = cli.run("check", "smtp")
    assert result.returncode == 1
    assert "What to do: " + report["fix"] in result.stderr
    assert leaked_tokens(cli) == []


def test_check_smtp_with_a_revoked_grant(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    sandbox.control.config(access_token_lifetime=2)  # due for refresh at once
    ready_smtp(cli, sandbox, smtp_peer)
    sandbox.control.revoke_user(ACCOUNT)
    time.sleep(1.5)

    code, report = check_json(cli, "smtp")

    assert code == 1
    assert failed_step(report)["step"] == "token"
    assert report["fix"] == (
        "Token update failed: delete the token and obtain it again "
        "(tokenpost token delete smtp, then tokenpost token get smtp)"
    )
    assert cli.status()["smtp"]["state"] == "invalid"


def test_check_smtp_certificate_that_does_not_verify(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    ready_smtp(cli, sandbox, smtp_peer, ca=False)

    code, report = check_json(cli, "smtp")

    assert code == 1
    assert failed_step(report)["step"] == "tls"
    assert "--ca-file" in report["fix"]
    assert [s["step"] for s in report["steps"]] == [*SMTP_STEPS[:5], "tls"]


def test_check_without_the_setting_is_bad_usage(cli: Cli) -> None:
    code, report = check_json(cli, "pop:nope")
    assert code == 2
    assert [s["step"] for s in report["steps"]] == ["settings"]
    assert report["fix"] == "Add the POP setting: tokenpost pop add nope …"
    assert cli.run("check", "nonsense").returncode == 2


def test_check_pop_against_dovecot(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    cli.ok(
        "pop", "add", "fax", "--server", dovecot_peer.host,
        "--port", str(dovecot_peer.pop3s_port), "--security", "tls", "--check-interval", "300",
        "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT,
        "--deliver-to", str(tmp_path / "fax"), "--ca-file", str(dovecot_peer.ca_file),
    )  # fmt: skip
    acquire_by_device_flow(cli, sandbox, "pop:fax")

    code, report = check_json(cli, "pop:fax")

    assert code == 0, report
    assert [s["step"] for s in report["steps"]] == [
        "settings", "encryption", "connect", "tls", "greeting", "capa", "token", "auth", "quit",
    ]  # fmt: skip
    assert leaked_tokens(cli) == []


def test_a_one_shot_command_runs_the_alert_hook_before_it_exits(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.jsonl"
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import json, os, sys\n"
        f"with open({str(calls)!r}, 'a') as out:\n"
        "    env = {k: v for k, v in os.environ.items() if k.startswith('TOKENPOST_')}\n"
        "    out.write(json.dumps({'argv': sys.argv[1:], 'env': env}) + '\\n')\n",
        encoding="utf-8",
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    cli.ok("alerts", "set", "--hook", f"{sys.executable} {hook}")

    acquire_by_device_flow(cli, sandbox)
    cli.ok("token", "delete", "smtp", "--yes")

    runs = [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]
    events = [run["argv"][:2] for run in runs]
    assert ["token_acquired", "smtp"] in events
    assert events[-1] == ["token_deleted", "smtp"]
    assert runs[-1]["env"]["TOKENPOST_EVENT"] == "token_deleted"
    assert runs[-1]["env"]["TOKENPOST_SETTING"] == "smtp"
    assert "sbx_at_" not in calls.read_text(encoding="utf-8")
    assert leaked_tokens(cli) == []


def test_check_in_german_names_the_steps_and_the_fix(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_smtp(cli, sandbox, smtp_peer)
    passed = cli.run("--lang", "de", "check", "smtp")
    assert passed.returncode == 0, passed.stderr
    lines = passed.stdout.splitlines()
    assert lines[0].startswith("[  ok  ] Einstellungen vollständig")
    assert "Verschlüsselungsregel" in lines[1]
    assert any("Authentifizieren" in line for line in lines)
    assert any("Token" in line and "gültig bis" in line for line in lines)
    assert lines[-1] == "Verbindungstest bestanden."

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))  # a CA that did not sign the peer's cert
    cli.ok("smtp", "set", "--ca-file", str(other_ca))
    failed = cli.run("--lang", "de", "check", "smtp")
    assert failed.returncode == 1
    assert "[FEHLER] TLS" in failed.stdout
    assert "Verbindungstest fehlgeschlagen bei: TLS" in failed.stderr
    assert "Was zu tun ist: Das Zertifikat von" in failed.stderr
    assert "--ca-file" in failed.stderr

    wrong = cli.run("--lang", "de", "check", "nonsense")
    assert wrong.returncode == 2
    assert "ist keine Einstellung: Geben Sie smtp oder pop:NAME an" in wrong.stderr
