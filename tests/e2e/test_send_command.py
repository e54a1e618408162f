"""`tokenpost send` as an administrator runs it, against the sandbox SMTP server with tokens from
the sandbox authorization server."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import time
from email.message import Message
from pathlib import Path

import pytest
import trustme
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens

from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox

pytestmark = pytest.mark.slow


def configure_sandbox_smtp(
    cli: Cli, peer: SmtpSandbox, *extra: str, security: str = "starttls"
) -> None:
    port = peer.ready.tls_port if security == "tls" else peer.ready.starttls_port
    cli.ok(
        "smtp", "set", "--server", peer.host, "--port", str(port), "--security", security,
        "--timeout", "10", "--sender-name", "Scänner 2", "--sender-address",
        "scanner@example.test", "--auth", "oauth2", "--provider", "sbx", "--account", ACCOUNT,
        "--ca-file", str(peer.ready.ca_file), *extra,
    )  # fmt: skip


def ready_to_send(
    cli: Cli, sandbox: Sandbox, peer: SmtpSandbox, security: str = "starttls"
) -> None:
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    configure_sandbox_smtp(cli, peer, security=security)
    acquire_by_device_flow(cli, sandbox)


def attachments_of(content: bytes) -> list[tuple[str | None, bytes]]:
    message = email.message_from_bytes(content)
    parts: list[Message] = [
        p for p in message.walk() if p.get_content_disposition() == "attachment"
    ]
    return [(p.get_filename(), p.get_payload(decode=True)) for p in parts]  # type: ignore[misc]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_send_files_to_every_kind_of_recipient(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path, security: str
) -> None:
    ready_to_send(cli, sandbox, smtp_peer, security)
    scan = tmp_path / "Scan 0001.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4000)
    fax = tmp_path / "Fax ü.tif"
    fax.write_bytes(b"II*\x00" + b"\x01" * 70_000)

    out = cli.ok(
        "send", "--to", "bob@example.test", "--to", "carol@example.test",
        "--cc", "dave@example.test", "--bcc", "audit@example.test",
        "--subject", "Scan · Büro 2", "--body", "Two files.\n.dots stay", str(scan), str(fax),
    )  # fmt: skip

    assert out.startswith("Message sent: <")
    (message,) = smtp_peer.messages()
    assert message.envelope["rcpt_tos"] == [
        "bob@example.test", "carol@example.test", "dave@example.test", "audit@example.test",
    ]  # fmt: skip
    assert message.envelope["listener"] == security
    assert b"audit@example.test" not in message.content
    parsed = email.message_from_bytes(message.content)
    assert str(email.header.make_header(email.header.decode_header(parsed["Subject"]))) == (
        "Scan · Büro 2"
    )
    assert attachments_of(message.content) == [
        ("Scan 0001.pdf", scan.read_bytes()),
        ("Fax ü.tif", fax.read_bytes()),
    ]
    assert out.strip().removeprefix("Message sent: ") in message.content.decode()
    assert leaked_tokens(cli) == []


def test_body_from_a_file_and_german_output(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    body = tmp_path / "body.txt"
    body.write_text("Grüße aus dem Scanner.\n", encoding="utf-8")
    cli.extra_env["TOKENPOST_LANG"] = "de"
    out = cli.ok("send", "--to", "bob@example.test", "--body-file", str(body))
    assert out.startswith("Nachricht gesendet: <")
    (message,) = smtp_peer.messages()
    text = email.message_from_bytes(message.content).get_payload(decode=True)
    assert text == "Grüße aus dem Scanner.\r\n".encode()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--subject", "no recipient"], "at least one recipient"),
        (["--to", "bob at example.test"], "to: 'bob at example.test' is not an address"),
        (
            ["--to", "bob@example.test", "--cc", "x@example.test\r\nBcc: y@evil.test"],
            "cc: must not",
        ),
        (["--to", "bob@example.test", "--subject", "a\nBcc: y@evil.test"], "subject: must not"),
        (
            ["--to", "bob@example.test", "--body", "a", "--body-file", "b"],
            "cannot be used together",
        ),
        (["--to", "bob@example.test", "missing.pdf"], "missing.pdf: cannot be read"),
    ],
)
def test_bad_input_is_exit_2_with_the_field_and_rule(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, args: list[str], says: str
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    before = smtp_peer.stats()["connections"]
    result = cli.run("send", *args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert smtp_peer.stats()["connections"] == before


def test_a_policy_refusal_is_exit_1_with_the_fix_and_the_token_stays(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    smtp_peer.set_knobs(style="microsoft", policy={ACCOUNT: "tenant"})
    result = cli.run("send", "--to", "bob@example.test", "--subject", "hi")
    assert result.returncode == 1
    assert "535 5.7.139" in result.stderr
    assert "What to do: SMTP AUTH is disabled for the whole tenant" in result.stderr
    assert "Set-TransportConfig -SmtpClientAuthenticationDisabled $false" in result.stderr
    assert cli.status()["smtp"]["state"] == "acquired"
    assert smtp_peer.messages() == []
    assert leaked_tokens(cli) == []


def test_a_revoked_grant_is_exit_1_and_the_token_becomes_invalid(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    sandbox.control.config(access_token_lifetime=2)  # due for refresh at once
    ready_to_send(cli, sandbox, smtp_peer)
    sandbox.control.revoke_user(ACCOUNT)
    time.sleep(1.5)
    result = cli.run("send", "--to", "bob@example.test")
    assert result.returncode == 1
    assert "tokenpost: error: smtp: token endpoint: invalid_grant; obtain the token again" in (
        result.stderr
    )
    assert cli.status()["smtp"]["state"] == "invalid"
    assert leaked_tokens(cli) == []


def test_a_certificate_from_another_ca_is_exit_1(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    configure_sandbox_smtp(cli, smtp_peer, "--ca-file", str(other))
    result = cli.run("send", "--to", "bob@example.test")
    assert result.returncode == 1
    assert "did not verify" in result.stderr
    assert smtp_peer.auth_count("OAUTHBEARER", "success") == 0


@pytest.mark.parametrize(
    ("server", "flag", "code", "says"),
    [
        ("smtp.example.test", ["--allow-plaintext"], 2, "only for a server on loopback"),
        ("127.0.0.1", [], 2, "pass --allow-plaintext"),
        # Allowed, so it goes on: the server offers AUTH only after STARTTLS.
        ("127.0.0.1", ["--allow-plaintext"], 1, "offers no mechanism for password"),
    ],
)
def test_a_password_in_plaintext_needs_loopback_and_the_flag(
    cli: Cli, smtp_peer: SmtpSandbox, *, server: str, flag: list[str], code: int, says: str
) -> None:
    cli.ok(
        "smtp", "set", "--server", server, "--port", str(smtp_peer.ready.starttls_port),
        "--security", "none", "--timeout", "5", "--sender-name", "S",
        "--sender-address", "s@example.test", "--auth", "password", "--account", ACCOUNT,
        "--password", "-", stdin="secret-pw\n",
    )  # fmt: skip
    before = smtp_peer.stats()["connections"]
    result = cli.run("send", "--to", "bob@example.test", *flag)
    assert result.returncode == code, result.stderr
    assert says in result.stderr
    assert smtp_peer.stats()["connections"] - before == (1 if code == 1 else 0)
    assert "secret-pw" not in cli.all_output()


def test_refused_recipients_are_exit_1(cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    smtp_peer.set_knobs(reject_rcpt=["nobody@example.test"])
    result = cli.run("send", "--to", "bob@example.test", "--to", "nobody@example.test")
    assert result.returncode == 1
    assert "nobody@example.test: 550 5.1.1" in result.stderr
    assert smtp_peer.messages() == []


def test_a_large_attachment_is_sent_whole(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    big = tmp_path / "big.tif"
    big.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB
    out = cli.ok("send", "--to", "bob@example.test", str(big))
    assert out.startswith("Message sent: ")
    (message,) = smtp_peer.messages()
    assert attachments_of(message.content) == [("big.tif", big.read_bytes())]


# --- SIZE (RFC 1870) ----------------------------------------------------------------------------


def test_a_message_over_the_servers_size_limit_is_refused_before_upload(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    smtp_peer.set_knobs(size_limit=50_000)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 240)  # 61 kB, 83 kB in base64
    result = cli.run("send", "--to", "bob@example.test", str(scan))
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(
        r"tokenpost: error: the message is 8\d\.\d KiB \(8\d{4} bytes\), more than the "
        r"48\.8 KiB \(50000 bytes\) that 127\.0\.0\.1:\d+ accepts: send smaller attachments or "
        r"spread them over several messages, or ask the mail administrator for a higher limit",
        line,
    ), line
    assert smtp_peer.stats()["mail_commands"] == 0  # refused before MAIL FROM: nothing uploaded
    assert smtp_peer.messages() == []
    assert cli.status()["smtp"]["state"] == "acquired"

    german = cli.run("--lang", "de", "send", "--to", "bob@example.test", str(scan))
    assert german.returncode == 1
    assert "die Nachricht ist 8" in german.stderr
    assert "mehr als die 48,8 KiB (50000 Bytes)" in german.stderr
    assert "bitten Sie die Mail-Administration um ein höheres Limit" in german.stderr

    smtp_peer.set_knobs(size_limit=200_000)
    cli.ok("send", "--to", "bob@example.test", str(scan))
    (message,) = smtp_peer.messages()
    assert message.envelope["mail_options"] == [f"SIZE={len(message.content)}"]


# --- text that is not UTF-8 ---------------------------------------------------------------------


def test_a_body_file_that_is_not_utf8_is_exit_2_naming_the_file(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    body = tmp_path / "body.txt"
    body.write_bytes(b"caf\xe9 au lait\n")  # Latin-1
    before = smtp_peer.stats()["connections"]
    for args, stdin in ((["--body-file", str(body)], ""), (["--body-file", "-"], None)):
        if stdin is None:  # the same bytes on standard input
            result = subprocess.run(
                [sys.executable, "-m", "tokenpost", "send", "--to", "bob@example.test", *args],
                input=body.read_bytes(),
                capture_output=True,
                env=cli.env(),
                timeout=60,
                check=False,
            )
            code, stderr = result.returncode, result.stderr.decode()
        else:
            done = cli.run("send", "--to", "bob@example.test", *args)
            code, stderr = done.returncode, done.stderr
        assert code == 2, stderr
        (line,) = stderr.splitlines()
        shown = args[1]
        assert line == (
            f"tokenpost: error: --body-file {shown}: must be UTF-8 text (byte 3 is not)"
        )
    assert smtp_peer.stats()["connections"] == before


def test_a_body_file_without_end_is_refused_at_its_limit(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    result = cli.run("send", "--to", "bob@example.test", "--body-file", "/dev/zero")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "tokenpost: error: --body-file /dev/zero: larger than 10 MiB; send a longer text as an "
        "attachment\n"
    )


def test_a_body_argument_that_is_not_utf8_is_exit_2_not_a_control_character(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    latin1 = os.fsdecode(b"caf\xe9")
    for option in ("--body", "--subject"):
        result = cli.run("send", "--to", "bob@example.test", option, latin1)
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"tokenpost: argument 5 (after {option}) is not valid UTF-8 text; give it in UTF-8\n"
        )
    assert smtp_peer.messages() == []


def test_a_file_name_that_is_not_utf8_is_sent_with_the_file_whole(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, tmp_path: Path
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    scan = Path(os.fsdecode(bytes(tmp_path) + b"/Bericht \xe4.pdf"))
    scan.write_bytes(b"%PDF-1.7\n" * 100)
    cli.ok("send", "--to", "bob@example.test", str(scan))
    (message,) = smtp_peer.messages()
    assert attachments_of(message.content) == [("Bericht \ufffd.pdf", scan.read_bytes())]


# --- German -------------------------------------------------------------------------------------


def test_send_in_german_help_refusal_and_fix(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    ready_to_send(cli, sandbox, smtp_peer)
    help_page = cli.ok("--lang", "de", "send", "--help")
    assert "FILEs als Anhänge (und einen Text) von der Absenderadresse" in help_page
    assert "Blindkopie an (wiederholbar)." in help_page

    bad = cli.run("--lang", "de", "send", "--to", "bob at example.test")
    assert bad.returncode == 2
    assert bad.stderr == (
        "tokenpost: Fehler: to: 'bob at example.test' ist keine Adresse wie name@example.com "
        "(ASCII, höchstens 254 Zeichen)\n"
    )

    smtp_peer.set_knobs(style="microsoft", policy={ACCOUNT: "tenant"})
    refused = cli.run("--lang", "de", "send", "--to", "bob@example.test")
    assert refused.returncode == 1
    assert "der SMTP-Server hat per Richtlinie abgelehnt: 535 5.7.139" in refused.stderr
    assert "Was zu tun ist: SMTP AUTH ist für den ganzen Mandanten (Tenant) deaktiviert" in (
        refused.stderr
    )
    assert leaked_tokens(cli) == []
