"""`tokenpost setup` as an administrator answers it, with the answers piped in: the preset's
server as the default (none for a generic provider), the mail server's CA file checked like
`smtp set` checks it and asked again when refused, and the whole dialogue in German."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from cli_support import ACCOUNT, Cli

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow

CODE = re.compile(r"([A-Z0-9]{4}-[A-Z0-9]{4})")


def answered(cli: Cli, answers: list[str], *root: str) -> subprocess.CompletedProcess[str]:
    """`setup` given `answers`; its input ends after the last one."""
    return cli.run(*root, "setup", stdin="\n".join(answers) + "\n")


def smtp_of(cli: Cli) -> dict[str, object]:
    data = json.loads(cli.ok("smtp", "show", "--json"))
    return dict(data["smtp"])


def finish_with_device_flow(cli: Cli, sandbox: Sandbox, answers: list[str], *root: str) -> str:
    """Run `setup` to the end: approve the device code it shows; returns all it printed."""
    spawned = cli.spawn_with_input(*root, "setup", stdin="\n".join(answers) + "\n")
    line = spawned.wait_for_line(CODE)
    sandbox.control.approve(CODE.findall(line)[-1], user=ACCOUNT)
    status, err = spawned.finish()
    assert status == 0, err
    return cli.all_output()


@pytest.mark.parametrize(
    ("preset", "provider_answers", "server_prompt"),
    [
        ("microsoft", ["", "client-1", ""], "Primary server [smtp.office365.com]: "),
        ("google", ["", "client-1", "client-secret-1"], "Primary server [smtp.gmail.com]: "),
        (
            "generic",
            ["", "client-1", "https://as.example.test", "mail.send", ""],
            "Primary server: ",
        ),
    ],
)
def test_the_server_offered_is_the_presets_own(
    cli: Cli, preset: str, provider_answers: list[str], server_prompt: str
) -> None:
    # The answers end at the server question: an empty answer takes the default if there is one.
    result = answered(cli, [preset, *provider_answers, ""])
    assert result.returncode == 1  # the input ended before the dialogue did
    assert server_prompt in result.stdout
    assert "Aborted." in result.stderr
    if preset == "generic":
        assert "office365" not in result.stdout
        assert "gmail" not in result.stdout
        # No default: the empty answer was not taken, the question was asked again.
        assert result.stdout.count(server_prompt) == 2
    else:
        assert "Enable SSL/TLS" in result.stdout  # the default was taken: the next question


def test_a_ca_file_that_is_refused_is_asked_again_and_saved(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    answers = [
        "generic", "sbx", sandbox.clients.public, sandbox.issuer, "mail.send offline_access",
        str(sandbox.ca_file),  # the provider's CA
        "smtp.example.test", "starttls", "587",
        "/nonexistent/mail-ca.pem",  # the mail server's CA: refused
        "30", ACCOUNT, "", "Scanner",
        str(sandbox.ca_file),  # asked again: an existing file
    ]  # fmt: skip
    out = finish_with_device_flow(cli, sandbox, answers)
    assert "tokenpost: invalid settings for smtp:" in out
    assert "ca_file" in out
    assert out.count("CA file for the mail server's TLS (empty: the system's trust store)") == 2
    smtp = smtp_of(cli)
    assert smtp["ca_file"] == str(sandbox.ca_file.resolve())
    assert (smtp["server"], smtp["port"], smtp["account"]) == ("smtp.example.test", 587, ACCOUNT)
    assert cli.status()["smtp"]["state"] == "acquired"


def test_the_dialogue_in_german_with_ja_to_replace_the_setting(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp(account="old@example.test")
    answers = [
        "ja",  # replace the existing SMTP setting
        "",  # provider: the existing one (sbx)
        "smtp.example.test", "tls", "",  # server, security, port: 465, the default for tls
        "/nonexistent/mail-ca.pem",  # refused, asked again below
        "20", ACCOUNT, "", "Scanner",
        "",  # the mail server's CA again: the system's trust store
    ]  # fmt: skip
    out = finish_with_device_flow(cli, sandbox, answers, "--lang", "de")
    for german in (
        "Es gibt bereits eine SMTP-Einstellung (smtp.example.test, Konto old@example.test)",
        "[j/N]",
        "Anbieter",
        "Primärer Server: ",
        "SSL/TLS aktivieren",
        "Portnummer [465]",
        "CA-Datei für das TLS des Mailservers (leer: der Zertifikatspeicher des Systems)",
        "Zeitlimit (Sekunden) [30]",
        "Kontoname (das Postfach, für das das Token gilt)",
        "Absenderadresse",
        "Absendername",
        "tokenpost: ungültige Einstellungen für smtp:",
        "SMTP-Einstellung gespeichert. Das Token wird abgerufen (Token abrufen)…",
        "Token abgerufen (gültig bis",
    ):
        assert german in out, german
    assert "Primary server" not in out
    smtp = smtp_of(cli)
    assert (smtp["security"], smtp["port"], smtp["timeout"]) == ("tls", 465, 20)
    assert (smtp["account"], smtp["ca_file"]) == (ACCOUNT, None)
    assert cli.status()["smtp"]["state"] == "acquired"


@pytest.mark.parametrize("no", ["n", "nein", ""])
def test_declining_to_replace_changes_nothing(cli: Cli, sandbox: Sandbox, no: str) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    before = smtp_of(cli)
    result = answered(cli, [no, "", "other.example.test"], "--lang", "de")
    assert result.returncode == 1
    assert "Abgebrochen." in result.stderr
    assert "Primärer Server" not in result.stdout  # nothing after the question was asked
    assert smtp_of(cli) == before


def test_help_in_german() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenpost", "--lang", "de", "setup", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Geführte Einrichtung der SMTP-Einstellung mit OAuth 2.0" in result.stdout
