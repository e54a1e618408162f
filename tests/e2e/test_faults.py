"""Bad input and faults: each ends in a clear message and exit code, no traceback, no secret,
nothing lost from the store."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest
from cli_support import ACCOUNT, Cli

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    err = result.stderr
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_invalid_settings_exit_2_naming_field_and_rule(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    result = cli.run(
        "smtp", "set", "--server", "bad host!", "--port", "70000", "--security", "starttls",
        "--timeout", "30", "--sender-name", "S", "--sender-address", "not-an-address",
        "--auth", "oauth2", "--provider", "nope", "--account", ACCOUNT,
    )  # fmt: skip
    assert_clean_failure(result, 2, "port", "server", "sender_address", "provider")
    assert cli.run("smtp", "show").returncode != 0  # nothing was saved


def test_unreachable_provider(cli: Cli, sandbox: Sandbox) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli.ok(
        "provider", "add", "gone", "--preset", "generic", "--client-id", "c",
        "--token-endpoint", f"https://127.0.0.1:{port}/token",
        "--device-endpoint", f"https://127.0.0.1:{port}/device", "--scope", "s",
    )  # fmt: skip
    cli.set_smtp(provider="gone")
    assert_clean_failure(cli.run("token", "get", "smtp"), 1, "127.0.0.1")
    assert cli.status()["smtp"]["state"] == "not_acquired"


def test_certificate_that_does_not_verify(cli: Cli, sandbox: Sandbox) -> None:
    cli.ok(
        "provider", "add", "sbx", "--preset", "generic", "--issuer", sandbox.issuer,
        "--client-id", sandbox.clients.public, "--scope", "s",
    )  # fmt: skip
    cli.set_smtp()
    assert_clean_failure(cli.run("token", "get", "smtp"), 1, "certificate")


@pytest.mark.parametrize("kind", ["non_json", "oversized", "missing_access_token", "http_503"])
def test_broken_device_endpoint(cli: Cli, sandbox: Sandbox, kind: str) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    sandbox.control.fault("device", kind)
    result = cli.run("token", "get", "smtp")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert cli.status()["smtp"]["state"] == "not_acquired"


def test_token_response_without_expires_in(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(omit_expires_in=True)
    result = cli.run(
        "provider", "add", "sbx", "--preset", "generic", "--issuer", sandbox.issuer,
        "--client-id", sandbox.clients.app.client_id, "--client-secret", "-",
        "--ca-file", str(sandbox.ca_file), "--scope", "mail.send", "--flow", "app",
        stdin=sandbox.clients.app.secret + "\n",
    )  # fmt: skip
    assert result.returncode == 0
    cli.set_smtp()
    cli.ok("token", "get", "smtp")
    row = cli.status()["smtp"]
    assert row["state"] == "acquired"
    assert row["expires_at"]


def test_home_with_wrong_permissions(cli: Cli) -> None:
    cli.home.mkdir(mode=0o755)
    os.chmod(cli.home, 0o755)  # noqa: S103 - the wrong permission under test
    assert_clean_failure(cli.run("token", "status"), 1, "chmod 700")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wrong_key_touches_nothing(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    db = cli.home / "tokenpost.db"
    key = cli.home / "key"
    before = _digest(db)
    key.write_text("A" * 43 + "=\n")
    assert_clean_failure(cli.run("token", "status"), 1, "key")
    assert_clean_failure(cli.run("smtp", "set", "--timeout", "40"), 1, "key")
    assert _digest(db) == before


def test_missing_key_touches_nothing(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    db = cli.home / "tokenpost.db"
    before = _digest(db)
    (cli.home / "key").unlink()
    assert_clean_failure(cli.run("token", "status"), 1, "key")
    assert not (cli.home / "key").exists()
    assert _digest(db) == before


def test_corrupted_store(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    db = cli.home / "tokenpost.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    assert_clean_failure(cli.run("token", "status"), 1)
