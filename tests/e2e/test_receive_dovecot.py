"""`tokenpost receive` as an administrator runs it, against a private Dovecot checking tokens
at the sandbox authorization server."""

from __future__ import annotations

import json
import sys
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens

from dovecot_support import Dovecot
from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def message(n: int, *, attachment: bytes | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = "fax-gateway@example.test"
    mail["To"] = ACCOUNT
    mail["Subject"] = f"Fax {n}"
    mail["Message-ID"] = f"<fax-{n}@example.test>"
    mail.set_content(f"Fax number {n}.\n" + "filler line\n" * 200)
    if attachment is not None:
        mail.add_attachment(attachment, maintype="application", subtype="pdf", filename="fax.pdf")
    return mail.as_bytes().replace(b"\n", b"\r\n")


def message_ids(folder: Path) -> list[str]:
    """The Message-ID of every message in the Maildir (new and cur), sorted."""
    ids = []
    for sub in ("new", "cur"):
        for path in (folder / sub).iterdir():
            with path.open("rb") as source:
                ids.append(str(BytesParser().parse(source, headersonly=True)["Message-ID"]))
    return sorted(ids)


def add_pop(
    cli: Cli, dovecot: Dovecot, folder: Path, *extra: str, tls: bool = True, stdin: str = ""
) -> None:
    port = dovecot.pop3s_port if tls else dovecot.pop3_port
    cli.ok(
        "pop", "add", "fax", "--server", dovecot.host, "--port", str(port),
        "--security", "tls" if tls else "starttls", "--check-interval", "300",
        "--deliver-to", str(folder), "--ca-file", str(dovecot.ca_file), *extra, stdin=stdin,
    )  # fmt: skip


def oauth_pop(cli: Cli, sandbox: Sandbox, dovecot: Dovecot, folder: Path, *extra: str) -> None:
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    add_pop(cli, dovecot, folder, "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT)
    if extra:
        cli.ok("pop", "add", "fax", *extra)
    acquire_by_device_flow(cli, sandbox, "pop:fax")


def receive_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli.run("receive", *args, "--json")
    return result.returncode, json.loads(result.stdout)


def test_receive_over_pop3s_delivers_deletes_and_extracts(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    folder = tmp_path / "fax"
    oauth_pop(cli, sandbox, dovecot_peer, folder)
    for n in range(1, 5):
        dovecot_peer.add_message(ACCOUNT, message(n))
    dovecot_peer.add_message(ACCOUNT, message(5, attachment=b"%PDF-1.4 the fax"))

    code, report = receive_json(cli, "fax")

    assert code == 0, report
    [row] = report["settings"]
    assert (row["id"], row["fetched"], row["deleted"], row["error"]) == ("pop:fax", 5, 5, None)
    assert message_ids(folder) == [f"<fax-{n}@example.test>" for n in range(1, 6)]
    assert dovecot_peer.maildir_count(ACCOUNT) == 0
    [extracted] = list((folder / "attachments").iterdir())
    assert (extracted / "fax.pdf").read_bytes() == b"%PDF-1.4 the fax"
    again = cli.ok("receive")
    assert again.strip() == "pop:fax: 0 fetched, 0 deleted"
    assert leaked_tokens(cli) == []


def test_leave_on_server_over_stls_fetches_each_message_once(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    folder = tmp_path / "fax"
    oauth_pop(cli, sandbox, dovecot_peer, folder)
    add_pop(cli, dovecot_peer, folder, "--leave-on-server", tls=False)
    acquire_by_device_flow(cli, sandbox, "pop:fax")  # a new server: a new token
    for n in range(1, 4):
        dovecot_peer.add_message(ACCOUNT, message(n))

    first = receive_json(cli)
    dovecot_peer.add_message(ACCOUNT, message(4))
    second = receive_json(cli)

    assert first[0] == second[0] == 0
    assert (first[1]["settings"][0]["fetched"], first[1]["settings"][0]["deleted"]) == (3, 0)
    assert (second[1]["settings"][0]["fetched"], second[1]["settings"][0]["skipped"]) == (1, 3)
    assert message_ids(folder) == [f"<fax-{n}@example.test>" for n in range(1, 5)]
    assert dovecot_peer.maildir_count(ACCOUNT) == 4


def test_password_login_and_the_command(cli: Cli, dovecot_peer: Dovecot, tmp_path: Path) -> None:
    folder = tmp_path / "print"
    calls = tmp_path / "calls.txt"
    script = tmp_path / "print.py"
    script.write_text(
        "import os, sys\n"
        f"with open({str(calls)!r}, 'a') as out:\n"
        "    out.write(sys.argv[1] + ' ' + sys.argv[-1] + ' ' + os.environ['TOKENPOST_SETTING']"
        " + '\\n')\n"
    )
    user = "printer@example.test"
    dovecot_peer.set_password(user, "s3cret-pw")
    add_pop(
        cli, dovecot_peer, folder, "--auth", "password", "--account", user,
        "--password", "-", "--command", f"{sys.executable} {script} 'first arg'",
        stdin="s3cret-pw\n",
    )  # fmt: skip
    for n in range(1, 3):
        dovecot_peer.add_message(user, message(n))

    out = cli.ok("receive", "pop:fax")

    assert out.strip() == "pop:fax: 2 fetched, 2 deleted, 2 commands run"
    lines = sorted(calls.read_text().splitlines())
    delivered = sorted(str(p) for p in (folder / "new").iterdir())
    assert lines == [f"first arg {path} pop:fax" for path in delivered]
    assert dovecot_peer.maildir_count(user) == 0
    assert "s3cret-pw" not in cli.all_output()


def test_a_revoked_grant_fails_and_leaves_the_mail(
    cli: Cli, sandbox: Sandbox, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    folder = tmp_path / "fax"
    oauth_pop(cli, sandbox, dovecot_peer, folder)
    dovecot_peer.add_message(ACCOUNT, message(1))
    sandbox.control.revoke_user(ACCOUNT)

    result = cli.run("receive")

    assert result.returncode == 1
    assert "Receiving failed" in result.stderr
    assert dovecot_peer.maildir_count(ACCOUNT) == 1
    assert message_ids(folder) == []
    assert leaked_tokens(cli) == []


def test_receive_without_settings_and_with_an_unknown_name(cli: Cli) -> None:
    assert "No POP settings" in cli.ok("receive")
    assert cli.run("receive", "nope").returncode == 2


def test_receive_in_german_names_the_fix_for_a_command_that_cannot_start(
    cli: Cli, dovecot_peer: Dovecot, tmp_path: Path
) -> None:
    user = "printer@example.test"
    dovecot_peer.set_password(user, "s3cret-pw")
    add_pop(
        cli, dovecot_peer, tmp_path / "print", "--auth", "password", "--account", user,
        "--password", "-", "--command", "/nonexistent/print-fax --pin 4711", stdin="s3cret-pw\n",
    )  # fmt: skip
    dovecot_peer.add_message(user, message(1))

    result = cli.run("--lang", "de", "receive")

    assert result.returncode == 1
    summary = "pop:fax: 1 abgeholt, 1 gelöscht, 1 Befehl fehlgeschlagen, 1 Befehl noch ausstehend"
    assert summary in result.stderr
    assert "Der Befehl für" in result.stderr
    assert "konnte nicht gestartet werden" in result.stderr
    assert "'print-fax' kann nicht ausgeführt werden" in result.stderr
    assert "'tokenpost pop add fax --command BEFEHL'" in result.stderr
    assert "4711" not in result.stderr  # the command line may hold a secret: never shown
    assert dovecot_peer.maildir_count(user) == 0  # the message is delivered; its command owed
