"""What the settings commands refuse and show, through the installed command: arguments that are
not UTF-8, paths that cannot serve (a CA file without a certificate, a delivery folder that is a
file), a generic provider without a scope (with the scopes the sandbox offers), the flow each
provider uses, and all of it in German."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import ACCOUNT, Cli

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow

NOT_UTF8 = os.fsdecode(b"caf\xe9-secret")  # how Python hands tokenpost a Latin-1 argument


def pop_args(deliver_to: str, *extra: str) -> tuple[str, ...]:
    return (
        "pop", "add", "fax", "--server", "pop.example.test", "--port", "995", "--security", "tls",
        "--check-interval", "300", "--auth", "none", "--deliver-to", deliver_to, *extra,
    )  # fmt: skip


def test_an_argument_that_is_not_utf8_is_named_in_one_line(cli: Cli) -> None:
    result = cli.run("send", "--to", "a@example.test", "--body", NOT_UTF8)
    assert result.returncode == 2
    assert result.stderr == (
        "tokenpost: argument 5 (after --body) is not valid UTF-8 text; give it in UTF-8\n"
    )
    result = cli.run("smtp", "set", f"--password={NOT_UTF8}")
    assert result.returncode == 2
    assert "argument 3 (--password=…)" in result.stderr
    assert "secret" not in cli.all_output()  # the value is never shown


def test_a_delivery_folder_must_be_a_folder(cli: Cli, tmp_path: Path) -> None:
    for bad, rule in [
        ("", "deliver_to: must be an absolute directory path, no control characters"),
        ("/dev/null", "deliver_to: exists and is not a directory (a delivery folder is needed)"),
    ]:
        result = cli.run(*pop_args(bad))
        assert result.returncode == 2
        assert result.stderr.splitlines()[1:] == [f"  {rule}"]
    assert json.loads(cli.ok("pop", "list", "--json"))["pop"] == []
    cli.ok(*pop_args(str(tmp_path / "not-yet")))  # created by the first receive


def test_a_ca_file_must_hold_a_certificate_and_empty_clears_it(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    no_ca = tmp_path / "no-ca.pem"
    no_ca.write_text("-----BEGIN CERTIFICATE-----\n")
    rule = "  ca_file: holds no CA certificate (a PEM file of CA certificates is needed)"
    refused = cli.run(*pop_args(str(tmp_path), "--ca-file", str(no_ca)))
    assert (refused.returncode, refused.stderr.splitlines()[1:]) == (2, [rule])
    refused = cli.run(
        "provider", "add", "sbx", "--preset", "generic", "--issuer", sandbox.issuer,
        "--client-id", "c", "--scope", "mail.send", "--ca-file", str(no_ca),
    )  # fmt: skip
    assert (refused.returncode, refused.stderr.splitlines()[1:]) == (2, [rule])

    cli.ok(*pop_args(str(tmp_path), "--ca-file", str(sandbox.ca_file)))
    assert pop_of(cli)["ca_file"] == str(sandbox.ca_file)
    cli.ok("pop", "add", "fax", "--ca-file", "")
    assert pop_of(cli)["ca_file"] is None

    cli.add_sandbox_provider(sandbox)
    cli.set_smtp("--ca-file", str(sandbox.ca_file))
    cli.ok("smtp", "set", "--ca-file", "")
    assert json.loads(cli.ok("smtp", "show", "--json"))["smtp"]["ca_file"] is None


def pop_of(cli: Cli) -> dict[str, object]:
    (row,) = json.loads(cli.ok("pop", "list", "--json"))["pop"]
    return dict(row)


def test_a_generic_provider_without_a_scope_is_shown_the_offered_ones(
    cli: Cli, sandbox: Sandbox
) -> None:
    args = (
        "provider", "add", "sbx", "--preset", "generic", "--issuer", sandbox.issuer,
        "--client-id", sandbox.clients.public, "--ca-file", str(sandbox.ca_file),
    )  # fmt: skip
    result = cli.run(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[1] == (
        "  scope: a generic provider needs --scope (or --smtp-scope/--pop-scope); the provider"
        " offers: openid offline_access mail.send mail.read"
    )
    german = cli.run("--lang", "de", *args)
    assert german.returncode == 2
    assert "openid offline_access mail.send mail.read" in german.stderr
    assert "offers" not in german.stderr

    sandbox.control.fault("metadata", "http_503", count=2)
    result = cli.run(*args)
    assert "its discovery document could not be fetched" in result.stderr


def test_provider_list_shows_the_flow_in_use(cli: Cli, sandbox: Sandbox) -> None:
    cli.add_sandbox_provider(sandbox)
    cli.add_sandbox_provider(sandbox, "--flow", "browser", name="web")
    assert cli.ok("provider", "list").splitlines() == [
        f"sbx\tgeneric\tclient {sandbox.clients.public}\tflow device (the preset's default)",
        f"web\tgeneric\tclient {sandbox.clients.public}\tflow browser",
    ]
    rows = json.loads(cli.ok("provider", "list", "--json"))["providers"]
    assert [(r["flow"], r["effective_flow"], r["flow_is_preset_default"]) for r in rows] == [
        (None, "device", True),
        ("browser", "browser", False),
    ]


def test_validation_errors_and_export_comments_in_german(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    cli.add_sandbox_provider(sandbox)
    result = cli.run("--lang", "de", *pop_args("/dev/null", "--port", "0"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tokenpost: ungültige Einstellungen für pop:fax:",
        "  port: muss eine ganze Zahl von 1 bis 65535 sein",
        "  deliver_to: existiert und ist kein Verzeichnis (ein Zustellordner wird benötigt)",
    ]
    out = cli.ok("--lang", "de", *pop_args(str(tmp_path)))
    assert out == "POP-Einstellung fax gespeichert.\n"

    exported = cli.ok("--lang", "de", "config", "export")
    comments = [line for line in exported.splitlines() if line.startswith("#")]
    assert comments == [
        "# tokenpost-Einstellungen: Anbieter, die SMTP-Einstellung, die POP-Einstellungen und"
        " Warnungen.",
        "# Schlüssel sind die Befehlszeilenoptionen mit '_' statt '-'; Zeitangaben in Sekunden.",
        "# Geheimnisse (client_secret, password) fehlen; beim Import bleiben die gespeicherten"
        " erhalten.",
    ]
    # Only the comments differ: the German file imports like the English one.
    english = cli.ok("config", "export")
    assert [line for line in exported.splitlines() if not line.startswith("#")] == [
        line for line in english.splitlines() if not line.startswith("#")
    ]
    assert ACCOUNT not in exported


def test_a_provider_keeps_its_redirect_uri_and_proxy(cli: Cli) -> None:
    base = ("provider", "add", "m365", "--preset", "microsoft", "--client-id", "c-1")
    cli.ok(*base)
    shown = json.loads(cli.ok("provider", "list", "--json"))["providers"][0]
    assert (shown["redirect_uri"], shown["proxy"]) == ("http://localhost", None)
    cli.ok(*base, "--redirect-uri", "http://localhost/tokenpost", "--proxy", "http://proxy:3128")
    shown = json.loads(cli.ok("provider", "list", "--json"))["providers"][0]
    assert (shown["redirect_uri"], shown["proxy"]) == (
        "http://localhost/tokenpost",
        "http://proxy:3128",
    )
    cli.ok(*base, "--redirect-uri", "", "--proxy", "")  # '' is the default again
    shown = json.loads(cli.ok("provider", "list", "--json"))["providers"][0]
    assert (shown["redirect_uri"], shown["proxy"]) == ("http://localhost", None)


def test_a_bad_redirect_uri_or_proxy_is_refused_with_its_rule(cli: Cli) -> None:
    result = cli.run(
        "provider", "add", "m365", "--preset", "microsoft", "--client-id", "c-1",
        "--redirect-uri", "http://[::1]", "--proxy", "http://user:pw@proxy:3128",
    )  # fmt: skip
    assert result.returncode == 2
    assert "redirect_uri: Microsoft does not accept [::1]" in result.stderr
    assert "proxy: must not hold a user name or password" in result.stderr
    assert "pw@" not in result.stderr
