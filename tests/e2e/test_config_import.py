"""`config import` as an administrator runs it: a file that would remove settings needs
--replace, the tokens an import discards are revoked at the sandbox, and a file that is too large,
not UTF-8 or nested too deeply ends in one line (exit 2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def with_pop_token(cli: Cli, sandbox: Sandbox, tmp_path: Path) -> None:
    """A sandbox provider, an SMTP setting and POP setting fax, both with a token."""
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    cli.ok(
        "pop", "add", "fax", "--server", "pop.example.test", "--port", "995", "--security", "tls",
        "--check-interval", "300", "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT,
        "--deliver-to", str(tmp_path / "fax"),
    )  # fmt: skip
    acquire_by_device_flow(cli, sandbox, "smtp")
    acquire_by_device_flow(cli, sandbox, "pop:fax")


def revocations(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.control.stats().revoked if r.reason == "revocation")


def test_an_empty_file_is_refused_with_what_it_would_remove(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    with_pop_token(cli, sandbox, tmp_path)
    before = cli.ok("config", "export")
    empty = tmp_path / "empty.toml"
    empty.write_text("")

    result = cli.run("config", "import", str(empty))
    assert result.returncode == 2
    assert "POP setting fax" in result.stderr
    assert "--replace" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli.ok("config", "export") == before
    assert cli.status()["pop:fax"]["state"] == "acquired"
    assert revocations(sandbox) == 0


def test_replace_removes_and_revokes_at_the_provider(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    with_pop_token(cli, sandbox, tmp_path)
    empty = tmp_path / "empty.toml"
    empty.write_text("")

    out = cli.ok("config", "import", "--replace", str(empty))
    assert "Removed POP setting fax." in out
    assert "The token of pop:fax was discarded (revoked at the provider)." in out
    assert "pop:fax" not in cli.status()
    assert cli.status()["smtp"]["state"] == "acquired"  # no [smtp]: the SMTP setting stays
    assert revocations(sandbox) == 1
    assert leaked_tokens(cli) == []


def test_a_re_targeting_import_revokes_the_old_token(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    with_pop_token(cli, sandbox, tmp_path)
    exported = cli.ok("config", "export")
    path = tmp_path / "moved.toml"
    path.write_text(exported.replace('server = "pop.example.test"', 'server = "pop2.example.test"'))

    out = cli.ok("config", "import", str(path))
    assert "The token of pop:fax was discarded (revoked at the provider)." in out
    assert "Removed" not in out
    status = cli.status()
    assert (status["pop:fax"]["state"], status["smtp"]["state"]) == ("not_acquired", "acquired")
    (revoked,) = [r for r in sandbox.control.stats().revoked if r.reason == "revocation"]
    assert revoked.user == ACCOUNT
    assert tomllib.loads(cli.ok("config", "export"))["pop"]["fax"]["server"] == "pop2.example.test"


def test_pop_remove_revokes_its_token(cli: Cli, sandbox: Sandbox, tmp_path: Path) -> None:
    with_pop_token(cli, sandbox, tmp_path)
    out = cli.ok("pop", "remove", "fax", "--yes")
    assert "The token of pop:fax was discarded (revoked at the provider)." in out
    assert revocations(sandbox) == 1


def test_dev_zero_ends_at_once(cli: Cli) -> None:
    result = cli.run("config", "import", "/dev/zero", timeout=30)
    assert result.returncode == 2
    assert result.stderr == (
        "tokenpost: error: /dev/zero is larger than 1 MiB: that is not a settings file\n"
    )


def test_a_file_that_is_not_utf8_is_one_line(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[smtp]\nsender_name = "Büro"\n'.encode("latin-1"))
    result = cli.run("config", "import", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"tokenpost: error: {path} is not UTF-8 text (byte 23 is not valid): save it as UTF-8\n"
    )


def test_a_file_nested_100000_deep_is_one_problem(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = cli.run("config", "import", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "tokenpost: invalid settings for settings file:",
        "  toml: nested too deeply (arrays or inline tables inside each other)",
    ]


def test_import_checks_the_files_it_names(cli: Cli, tmp_path: Path) -> None:
    no_ca = tmp_path / "no-ca.pem"
    no_ca.write_text("not a certificate\n")
    path = tmp_path / "settings.toml"
    path.write_text(
        "[pop.fax]\n"
        'server = "pop.example.test"\nport = 995\nsecurity = "tls"\ncheck_interval = 30\n'
        f'auth = "none"\ndeliver_to = "/dev/null"\nca_file = "{no_ca}"\n'
    )
    result = cli.run("config", "import", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tokenpost: invalid settings for settings file:",
        "  pop.fax.check_interval: must be an integer from 60 to 86400 seconds",
        "  pop.fax.ca_file: holds no CA certificate (a PEM file of CA certificates is needed)",
        "  pop.fax.deliver_to: exists and is not a directory (a delivery folder is needed)",
    ]
