"""`token status [SETTING]`, `token refresh` and `token show` as scripts and other mail tools use
them (msmtp, fetchmail and Postfix through `passwordeval`)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

import pytest
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow

NOT_IN_FORCE = 3


def ready(cli: Cli, sandbox: Sandbox, *, lifetime: int = 3600) -> None:
    sandbox.control.config(device_interval=0, access_token_lifetime=lifetime)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    acquire_by_device_flow(cli, sandbox)


def add_pop(cli: Cli) -> None:
    cli.ok(
        "pop", "add", "fax", "--server", "pop.example.test", "--port", "995", "--security", "tls",
        "--check-interval", "300", "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT,
        "--deliver-to", str(cli.home.parent / "fax"),
    )  # fmt: skip


def refreshes(sandbox: Sandbox) -> int:
    return sandbox.control.stats().grants_by_type.get("refresh_token", 0)


# -- token status [SETTING] ------------------------------------------------------------------------


def test_status_exit_code_says_whether_every_token_shown_serves_mail(
    cli: Cli, sandbox: Sandbox
) -> None:
    ready(cli, sandbox)
    assert cli.run("token", "status").returncode == 0
    add_pop(cli)  # its token is not acquired
    for args in ([], ["--json"]):
        assert cli.run("token", "status", *args).returncode == NOT_IN_FORCE
        assert cli.run("token", "status", "pop:fax", *args).returncode == NOT_IN_FORCE
        assert cli.run("token", "status", "smtp", *args).returncode == 0
    one = cli.run("token", "status", "smtp", "--json")
    data = json.loads(one.stdout)
    assert data["format_version"] == 1
    assert [row["id"] for row in data["settings"]] == ["smtp"]
    text = cli.run("token", "status", "pop:fax")
    assert "pop:fax" in text.stdout
    assert "smtp" not in text.stdout.replace("smtp set", "")
    # An unknown setting is bad usage; a store that cannot be read is a failure (1).
    unknown = cli.run("token", "status", "pop:nope")
    assert unknown.returncode == 2
    assert "no POP setting 'nope'" in unknown.stderr
    (cli.home / "key").write_text("A" * 43 + "=\n")
    assert cli.run("token", "status").returncode == 1


def test_a_password_setting_has_no_token_to_fail_on(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.ok(
        "smtp", "set", "--server", "smtp.example.test", "--port", "587", "--security", "starttls",
        "--timeout", "30", "--sender-name", "S", "--sender-address", "s@example.test",
        "--auth", "password", "--account", "s@example.test", "--password", "-",
        stdin="pw-not-shown\n",
    )  # fmt: skip
    assert cli.run("token", "status", "smtp").returncode == 0


# -- token refresh ---------------------------------------------------------------------------------


def test_refresh_now_even_when_not_due(cli: Cli, sandbox: Sandbox) -> None:
    ready(cli, sandbox)
    before = cli.status()["smtp"]["expires_at"]
    out = cli.ok("token", "refresh", "smtp")
    assert out.startswith("Token refreshed (valid until ")
    assert refreshes(sandbox) == 1
    assert cli.status()["smtp"]["state"] == "acquired"
    assert cli.status()["smtp"]["expires_at"] >= before
    german = cli.run("--lang", "de", "token", "refresh", "smtp")
    assert german.returncode == 0
    assert german.stdout.startswith("Token aktualisiert (gültig bis ")
    assert refreshes(sandbox) == 2
    assert sandbox.control.stats().refresh_replays == 0
    assert leaked_tokens(cli) == []


def test_refresh_failures_exit_1_with_the_fix(cli: Cli, sandbox: Sandbox) -> None:
    ready(cli, sandbox)
    sandbox.control.fault("token", "http_503")
    failed = cli.run("token", "refresh", "smtp")
    assert failed.returncode == 1
    assert "tokenpost check smtp" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert cli.status()["smtp"]["state"] == "acquired"  # kept
    add_pop(cli)
    missing = cli.run("token", "refresh", "pop:fax")
    assert missing.returncode == 1
    assert "tokenpost token get pop:fax" in missing.stderr
    sandbox.control.revoke_user(ACCOUNT)
    revoked = cli.run("token", "refresh", "smtp")
    assert revoked.returncode == 1
    assert "invalid_grant" in revoked.stderr
    assert cli.status()["smtp"]["state"] == "invalid"


# -- token show ------------------------------------------------------------------------------------


def test_show_prints_a_fresh_token_and_nothing_else(cli: Cli, sandbox: Sandbox) -> None:
    ready(cli, sandbox, lifetime=2)
    sandbox.control.config(access_token_lifetime=3600)  # for the tokens refreshing gives
    time.sleep(1.5)  # the first token is due (half its lifetime has passed)
    shown = cli.run("--debug", "token", "show", "smtp")  # the most talkative logs
    assert shown.returncode == 0, shown.stderr
    token = shown.stdout.removesuffix("\n")
    assert token.startswith("sbx_at_")
    assert "\n" not in token
    assert refreshes(sandbox) == 1  # refreshed first, because it was due
    assert token not in shown.stderr
    again = cli.run("token", "show", "smtp")
    assert again.stdout == shown.stdout  # the fresh token is reused, not refreshed again
    assert refreshes(sandbox) == 1
    cli.outputs = [o for o in cli.outputs if o != shown.stdout]
    assert leaked_tokens(cli) == []  # nowhere else: not in the store files, logs or stderr


def test_show_refuses_a_terminal_without_yes(cli: Cli, sandbox: Sandbox) -> None:
    ready(cli, sandbox)
    for args, expected in ((["token", "show", "smtp"], 2), (["token", "show", "smtp", "--yes"], 0)):
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", *args],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=cli.env(),
        )
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not chunk:
                break
            output += chunk
        assert process.stderr is not None
        err = process.stderr.read().decode()
        process.stderr.close()
        assert process.wait(timeout=60) == expected, err
        os.close(controller)
        if expected == 2:
            assert "--yes" in err
            assert b"sbx_at_" not in output
        else:
            assert output.startswith(b"sbx_at_")


def test_show_of_a_setting_without_a_token_fails_with_the_fix(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    result = cli.run("token", "show", "smtp")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "tokenpost token get smtp" in result.stderr
