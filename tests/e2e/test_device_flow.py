"""The real CLI against the sandbox authorization server: the device authorization grant."""

from __future__ import annotations

import json
import re

import pytest
from cli_support import ACCOUNT, Cli, Spawned

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def start_get(cli: Cli, setting: str = "smtp") -> tuple[Spawned, dict[str, object]]:
    spawned = cli.spawn("token", "get", setting, "--json")
    prompt = spawned.next_event()
    assert prompt["event"] == "authorization_required"
    return spawned, prompt


def test_device_flow_acquires_and_status_shows_it(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    assert cli.status()["smtp"]["state"] == "not_acquired"

    spawned, prompt = start_get(cli)
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", str(prompt["user_code"]))
    assert str(prompt["verification_uri"]).startswith(sandbox.issuer)
    assert 0 < int(prompt["expires_in"]) <= 600  # type: ignore[call-overload]
    assert cli.status()["smtp"]["state"] == "waiting_for_authorization"
    sandbox.control.approve(str(prompt["user_code"]), user=ACCOUNT)
    done = spawned.next_event()
    code, _err = spawned.finish()
    assert (code, done["event"], done["state"], done["label"]) == (
        0,
        "done",
        "acquired",
        "Acquired",
    )

    row = cli.status()["smtp"]
    assert (row["state"], row["label"], row["account"], row["provider"]) == (
        "acquired",
        "Acquired",
        ACCOUNT,
        "sbx",
    )
    assert row["expires_at"].endswith("Z")
    # The panel's labels, in German too.
    german = cli.run("--lang", "de", "token", "status")
    assert german.returncode == 0
    assert "Abgerufen" in german.stdout
    # Each POP setting has its own token, even for the same provider and account.
    cli.ok(
        "pop", "add", "fax", "--server", "pop.example.test", "--port", "995", "--security", "tls",
        "--check-interval", "300", "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT,
        "--deliver-to", str(cli.home.parent / "fax"),
    )  # fmt: skip
    assert cli.status()["pop:fax"]["state"] == "not_acquired"
    assert "sbx_at_" not in cli.all_output()
    assert "sbx_rt_" not in cli.all_output()


def test_text_mode_shows_code_and_qr(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    spawned = cli.spawn("token", "get", "smtp")
    lines = []
    while True:
        line = spawned.lines.get(timeout=30)
        assert line is not None
        lines.append(line)
        match = re.search(r"enter the code ([A-Z0-9]{4}-[A-Z0-9]{4})", line)
        if match:
            break
    sandbox.control.approve(match.group(1), user=ACCOUNT)
    code, err = spawned.finish()
    out = "".join(lines) + "".join(cli.outputs)
    assert code == 0, err
    assert "Token acquired (valid until " in out
    assert "█" in out or "▀" in out or "▄" in out  # the QR code


@pytest.mark.parametrize(("action", "reason"), [("deny", "denied"), ("expire", "expired")])
def test_denied_or_expired_ends_with_exit_1(
    cli: Cli, sandbox: Sandbox, action: str, reason: str
) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    spawned, prompt = start_get(cli)
    getattr(sandbox.control, action)(str(prompt["user_code"]))
    done = spawned.next_event()
    code, err = spawned.finish()
    assert code == 1
    assert done["state"] == "not_acquired"
    assert reason in done["reason"]
    assert reason in err
    assert "Traceback" not in err
    assert cli.status()["smtp"]["state"] == "not_acquired"


def test_slow_down_is_honoured(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    sandbox.control.fault("token", "slow_down", count=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    spawned, prompt = start_get(cli)
    sandbox.control.approve(str(prompt["user_code"]), user=ACCOUNT)
    done = spawned.next_event(timeout=40)
    assert done["state"] == "acquired"
    assert spawned.finish()[0] == 0


def test_ctrl_c_leaves_the_flow_cleanly(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    spawned, _prompt = start_get(cli)
    spawned.interrupt()
    code, err = spawned.finish()
    assert code == 130
    assert "Traceback" not in err
    row = cli.status()["smtp"]
    assert row["state"] == "not_acquired"
    assert "cancelled" in row["reason"]
    # The reason was recorded as a text, so it reads in the reader's language.
    german = cli.run("--lang", "de", "token", "status")
    assert german.returncode == 3  # the token serves no mail
    assert "Nicht abgerufen" in german.stdout
    assert "die Autorisierung wurde abgebrochen" in german.stdout
    german_json = json.loads(cli.run("--lang", "de", "token", "status", "--json").stdout)
    assert german_json["settings"][0]["reason"] == "die Autorisierung wurde abgebrochen"


def test_token_get_on_a_password_setting_is_usage_error(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.ok(
        "smtp", "set", "--server", "smtp.example.test", "--port", "587", "--security", "starttls",
        "--timeout", "30", "--sender-name", "S", "--sender-address", "s@example.test",
        "--auth", "password", "--account", "s@example.test", "--password", "-",
        stdin="pw-not-shown\n",
    )  # fmt: skip
    result = cli.run("token", "get", "smtp")
    assert result.returncode == 2
    assert "oauth2" in result.stderr
    assert "pw-not-shown" not in cli.all_output()


def add_app_provider(cli: Cli, sandbox: Sandbox) -> None:
    """The app-only client; its secret goes in on standard input, never on the command line."""
    result = cli.run(
        "provider", "add", "sbx", "--preset", "generic", "--issuer", sandbox.issuer,
        "--client-id", sandbox.clients.app.client_id, "--client-secret", "-",
        "--ca-file", str(sandbox.ca_file), "--scope", "mail.send", "--flow", "app",
        stdin=sandbox.clients.app.secret + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_app_only_token_and_discard_when_the_account_changes(cli: Cli, sandbox: Sandbox) -> None:
    add_app_provider(cli, sandbox)
    cli.set_smtp()
    cli.ok("token", "get", "smtp")
    assert cli.status()["smtp"]["state"] == "acquired"
    cli.set_smtp(account="bob@example.test")
    row = cli.status()["smtp"]
    assert row["state"] == "not_acquired"
    assert sandbox.clients.app.secret not in cli.all_output()
