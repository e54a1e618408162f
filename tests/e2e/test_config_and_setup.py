"""Settings in version control (`config export|import`) and the guided `setup`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from cli_support import ACCOUNT, Cli

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def configured(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.ok(
        "smtp", "set", "--server", "smtp.example.test", "--port", "465", "--security", "tls",
        "--timeout", "20", "--sender-name", "Scanner 3", "--sender-address",
        "scanner@example.test", "--auth", "password", "--account", "scanner@example.test",
        "--password", "-", stdin="smtp-password-1\n",
    )  # fmt: skip
    cli.ok(
        "pop", "add", "fax", "--server", "pop.example.test", "--port", "995", "--security", "tls",
        "--check-interval", "300", "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT,
        "--deliver-to", "/var/spool/fax",
    )  # fmt: skip


def test_export_import_round_trip_keeps_secrets_out(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    configured(cli, sandbox)
    exported = cli.ok("config", "export")
    assert "smtp-password-1" not in exported
    doc = tomllib.loads(exported)
    assert doc["smtp"]["port"] == 465
    assert doc["pop"]["fax"]["check_interval"] == 300

    # Edit in "version control", import back: the password the file omits is kept.
    edited = exported.replace("check_interval = 300", "check_interval = 600")
    path = tmp_path / "settings.toml"
    path.write_text(edited)
    cli.ok("config", "import", str(path))
    assert tomllib.loads(cli.ok("config", "export"))["pop"]["fax"]["check_interval"] == 600
    with_secrets = cli.ok("config", "export", "--include-secrets")
    assert "smtp-password-1" in with_secrets

    # The same file builds the same settings in a new home (secrets included when exported).
    other = Cli(tmp_path / "other-home")
    full = tmp_path / "full.toml"
    full.write_text(with_secrets)
    other.ok("config", "import", str(full))
    assert other.ok("config", "export") == cli.ok("config", "export")


def test_invalid_import_changes_nothing(cli: Cli, sandbox: Sandbox, tmp_path: Path) -> None:
    configured(cli, sandbox)
    before = cli.ok("config", "export")
    bad = before.replace("port = 995", "port = 99999").replace("smtp.example.test", "bad host")
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    result = cli.run("config", "import", str(path))
    assert result.returncode == 2
    assert "pop.fax.port" in result.stderr
    assert "smtp.server" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.ok("config", "export") == before


def test_setup_asks_for_the_quick_settings_then_gets_the_token(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    answers = [
        "generic",  # provider type
        "sbx",  # its name
        sandbox.clients.public,  # client ID
        sandbox.issuer,  # issuer
        "mail.send offline_access",  # scopes
        str(sandbox.ca_file),  # the provider's CA
        "smtp.example.test",  # primary server
        "starttls",
        "587",
        "",  # the mail server's CA: the system's trust store
        "30",
        ACCOUNT,  # account
        "",  # sender address: default (the account)
        "Scanner",  # sender name
    ]
    spawned = cli.spawn_with_input("setup", stdin="\n".join(answers) + "\n")
    code_line = spawned.wait_for_line(re.compile(r"enter the code ([A-Z0-9]{4}-[A-Z0-9]{4})"))
    user_code = re.search(r"([A-Z0-9]{4}-[A-Z0-9]{4})", code_line).group(1)  # type: ignore[union-attr]
    sandbox.control.approve(user_code, user=ACCOUNT)
    status, err = spawned.finish()
    assert status == 0, err
    row = cli.status()["smtp"]
    assert (row["state"], row["account"], row["provider"]) == ("acquired", ACCOUNT, "sbx")
