"""The trust and proxy settings as an administrator sets them: TOKENPOST_CA_FILE for the provider
and the mail server alike, a bad one refused at start, and provider traffic through HTTPS_PROXY /
NO_PROXY or a provider's --proxy (a CONNECT proxy of our own, tests/proxy_support.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from cli_support import ACCOUNT, SCOPE, Cli, acquire_by_device_flow

from proxy_support import ConnectProxy, threaded
from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox
from tokenpost_sandbox.certs import PROXIED_HOST

pytestmark = pytest.mark.slow

PASSWORD = "pr0xy-S3cret"


def set_sandbox_smtp(cli: Cli, peer: SmtpSandbox) -> None:
    """The SMTP setting at the sandbox SMTP server, without a --ca-file of its own."""
    cli.ok(
        "smtp", "set", "--server", peer.host, "--port", str(peer.ready.starttls_port),
        "--security", "starttls", "--timeout", "10", "--sender-name", "Scanner",
        "--sender-address", "scanner@example.test", "--auth", "oauth2", "--provider", "sbx",
        "--account", ACCOUNT,
    )  # fmt: skip


def check_smtp(cli: Cli) -> tuple[int, dict[str, Any]]:
    result = cli.run("check", "smtp", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, dict(json.loads(result.stdout))


def test_tokenpost_ca_file_alone_serves_the_provider_and_the_mail_server(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    cli.extra_env["TOKENPOST_CA_FILE"] = str(sandbox.ca_file)
    sandbox.control.config(device_interval=0)
    cli.ok(
        "provider", "add", "sbx", "--preset", "generic", "--issuer", sandbox.issuer,
        "--client-id", sandbox.clients.public, "--scope", SCOPE,
    )  # fmt: skip
    set_sandbox_smtp(cli, smtp_peer)
    acquire_by_device_flow(cli, sandbox)  # discovery, device authorization, polling: all HTTPS

    code, report = check_smtp(cli)
    assert code == 0, report
    tls = next(step for step in report["steps"] if step["step"] == "tls")
    assert tls["detail"] == f"STARTTLS, trusted: the CA file {sandbox.ca_file} (TOKENPOST_CA_FILE)"

    # Without the variable, the system store is what is trusted, and it knows no test CA.
    del cli.extra_env["TOKENPOST_CA_FILE"]
    code, report = check_smtp(cli)
    assert code == 1
    failed = report["steps"][-1]
    assert failed["step"] == "tls"
    assert "(trusted: the system trust store)" in failed["detail"]


@pytest.mark.parametrize("lang", ["en", "de"])
def test_a_tokenpost_ca_file_without_a_ca_is_refused_naming_the_variable(
    cli: Cli, tmp_path: Path, lang: str
) -> None:
    leaf = tmp_path / "server.pem"
    trustme.CA().issue_cert("mail.example.test").cert_chain_pems[0].write_to_path(str(leaf))
    cli.extra_env["TOKENPOST_CA_FILE"] = str(leaf)

    result = cli.run("--lang", lang, "admin", "list")  # any command that opens the app

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    if lang == "en":
        assert line == (
            f"tokenpost: error: cannot use the CA file {leaf} (TOKENPOST_CA_FILE): holds no CA "
            "certificate (a PEM file of CA certificates is needed); set TOKENPOST_CA_FILE to a "
            "PEM file of CA certificates, or unset it to use the system trust store"
        )
    else:
        assert f"die CA-Datei {leaf} (TOKENPOST_CA_FILE) ist nicht verwendbar: " in line


# --------------------------------------------------------------------------- proxies


def add_app_provider(cli: Cli, sandbox: Sandbox, *, host: str, extra: tuple[str, ...] = ()) -> None:
    """The app-only client with its token endpoint at `host` (no discovery)."""
    port = urlsplit(sandbox.issuer).port
    cli.ok(
        "provider", "add", "sbx", "--preset", "generic",
        "--token-endpoint", f"https://{host}:{port}/token",
        "--client-id", sandbox.clients.app.client_id, "--client-secret", "-",
        "--ca-file", str(sandbox.ca_file), "--scope", "mail.send", "--flow", "app", *extra,
        stdin=sandbox.clients.app.secret + "\n",
    )  # fmt: skip
    cli.set_smtp()


def test_https_proxy_of_the_environment_carries_the_token_request(
    cli: Cli, sandbox: Sandbox
) -> None:
    with threaded(ConnectProxy(hosts={PROXIED_HOST: "127.0.0.1"})) as proxy:
        cli.extra_env["HTTPS_PROXY"] = proxy.url
        add_app_provider(cli, sandbox, host=PROXIED_HOST)  # a name only the proxy resolves
        cli.ok("token", "get", "smtp")
        assert proxy.tunnels == 1
        assert proxy.targets == [f"{PROXIED_HOST}:{urlsplit(sandbox.issuer).port}"]
    assert cli.status()["smtp"]["state"] == "acquired"


def test_a_providers_proxy_carries_its_traffic(cli: Cli, sandbox: Sandbox) -> None:
    with threaded(ConnectProxy()) as proxy:
        # Even to a loopback endpoint, which the environment's proxy never gets.
        add_app_provider(cli, sandbox, host="127.0.0.1", extra=("--proxy", proxy.url))
        listed = json.loads(cli.ok("provider", "list", "--json"))
        cli.ok("token", "get", "smtp")
        assert proxy.tunnels == 1
    assert listed["providers"][0]["proxy"] == proxy.url
    assert cli.status()["smtp"]["state"] == "acquired"


def test_a_no_proxy_host_goes_direct(cli: Cli, sandbox: Sandbox) -> None:
    with threaded(ConnectProxy(hosts={PROXIED_HOST: "127.0.0.1"})) as proxy:
        cli.extra_env.update({"HTTPS_PROXY": proxy.url, "NO_PROXY": ".tokenpost.test"})
        add_app_provider(cli, sandbox, host=PROXIED_HOST)
        result = cli.run("token", "get", "smtp")
        assert proxy.targets == []
    assert result.returncode == 1
    assert "host name not resolved" in result.stderr


def test_a_refusing_proxy_is_named_without_its_password(cli: Cli, sandbox: Sandbox) -> None:
    with threaded(ConnectProxy(refuse=403)) as proxy:
        cli.extra_env["HTTPS_PROXY"] = f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}"
        add_app_provider(cli, sandbox, host=PROXIED_HOST)
        result = cli.run("--debug", "token", "get", "smtp")
    assert result.returncode == 1
    assert (
        f"the proxy {proxy.url} (the variable HTTPS_PROXY) refused the connection to "
        f"{PROXIED_HOST}:{urlsplit(sandbox.issuer).port} (403 Refused By Test Proxy)"
    ) in result.stderr
    assert PASSWORD not in cli.all_output()
