"""The store against someone who can write tokenpost.db (issue 8, items 3, 6 and 12), as an
administrator meets it on the command line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_support import Cli, acquire_by_device_flow, leaked_tokens

from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox

pytestmark = pytest.mark.slow


def sql(cli: Cli, statement: str, params: tuple[object, ...] = ()) -> None:
    with sqlite3.connect(cli.home / "tokenpost.db") as conn:
        conn.execute(statement, params)
    conn.close()


def test_security_changed_to_none_behind_tokenposts_back_is_refused(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    cli.ok(
        "smtp", "set", "--server", smtp_peer.host, "--port", str(smtp_peer.ready.starttls_port),
        "--security", "starttls", "--timeout", "10", "--sender-name", "Scanner",
        "--sender-address", "scanner@example.test", "--auth", "oauth2", "--provider", "sbx",
        "--account", "alice@example.test", "--ca-file", str(smtp_peer.ready.ca_file),
    )  # fmt: skip
    acquire_by_device_flow(cli, sandbox)
    sql(cli, "UPDATE smtp SET security = 'none'")
    before = smtp_peer.stats()["connections"]
    result = cli.run("send", "--to", "bob@example.test", "--allow-plaintext")
    assert result.returncode == 1, result.stderr
    assert "setting smtp in the store was changed outside tokenpost" in result.stderr
    assert "'tokenpost smtp set' and all its options" in result.stderr
    assert "Traceback" not in result.stderr
    assert smtp_peer.stats()["connections"] == before  # nothing went out, in clear or not
    row = cli.status()["smtp"]
    assert (row["state"], row["label"], row["auth"]) == ("invalid", "Invalid", None)
    assert "changed outside tokenpost" in row["reason"]
    assert leaked_tokens(cli) == []


def test_status_lists_a_damaged_pop_setting_and_pop_remove_removes_it(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    for name in ("fax", "print"):
        cli.ok(
            "pop", "add", name, "--server", "127.0.0.1", "--port", "995", "--security", "tls",
            "--check-interval", "300", "--auth", "password", "--account", f"{name}@example.test",
            "--password", "-", "--deliver-to", str(tmp_path / name), stdin="pop-secret\n",
        )  # fmt: skip
    sql(cli, "UPDATE pop SET password = ? WHERE name = 'fax'", (b"\x01" * 40,))
    rows = cli.status()
    assert list(rows) == ["smtp", "pop:fax", "pop:print"]
    assert rows["smtp"]["state"] == "not_acquired"
    assert rows["pop:print"]["state"] is None  # password authentication: no token
    assert rows["pop:fax"]["state"] == "invalid"
    assert "'tokenpost pop remove fax'" in rows["pop:fax"]["reason"]
    listed = cli.run("token", "status")
    assert listed.returncode == 3  # a token shown serves no mail
    table = listed.stdout
    assert "pop:fax" in table
    assert "Invalid" in table
    cli.ok("pop", "remove", "fax", "--yes")
    assert list(cli.status()) == ["smtp", "pop:print"]
    assert "pop-secret" not in cli.all_output()


def test_an_empty_store_beside_its_key_is_refused_in_both_languages(
    cli: Cli, sandbox: Sandbox
) -> None:
    cli.add_sandbox_provider(sandbox)
    db, key = cli.home / "tokenpost.db", cli.home / "key"
    for path in cli.home.glob("tokenpost.db-*"):
        path.unlink()
    db.write_bytes(b"")
    for args in (("token", "status"), ("provider", "list")):
        result = cli.run(*args)
        assert result.returncode == 1, result.stderr
        assert f"the store {db} is empty, but the key file {key} exists" in result.stderr
        assert "Restore" in result.stderr
        assert "move the key file" in result.stderr
    german = cli.run("--lang", "de", "token", "status")
    assert german.returncode == 1
    assert str(db) in german.stderr
    assert str(key) in german.stderr
    assert "Sicherung" in german.stderr
    db.unlink()
    missing = cli.run("token", "status")
    assert missing.returncode == 1
    assert f"the store {db} does not exist, but the key file {key} does" in missing.stderr
    assert not db.exists()
