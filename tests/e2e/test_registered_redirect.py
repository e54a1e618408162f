"""The real CLI against the sandbox, which matches redirect URIs as Microsoft does (exactly, except
a loopback port): the browser flow with the redirect URI the administrator registered, the hint
when nothing comes back, and the address pasted on a host without a browser.

The tests play the browser with httpx. The hint delay is shortened through
TOKENPOST_TEST_REDIRECT_HINT_AFTER (seconds), a variable only tests use (see `wiring`)."""

from __future__ import annotations

import re
import socket
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from cli_support import Cli, Spawned

from loopback_support import free_port, has_ipv6_loopback
from sandbox_support import Sandbox, ca_context

pytestmark = pytest.mark.slow

HINT = re.compile(r"No answer from the browser yet")


def start(
    cli: Cli, sandbox: Sandbox, *provider: str, interactive: bool = False, json: bool = True
) -> tuple[Spawned, dict[str, Any]]:
    """`token get smtp` with a browser-flow provider; its first event (or a parsed prompt)."""
    cli.add_sandbox_provider(sandbox, "--flow", "browser", *provider)
    cli.set_smtp()
    args = ("token", "get", "smtp", *(("--json",) if json else ()))
    spawned = cli.spawn_interactive(*args) if interactive else cli.spawn(*args)
    if json:
        event = spawned.next_event()
        assert event["event"] == "open_browser"
        return spawned, event
    line = spawned.wait_for_line(re.compile(r"Open this address in a browser: "))
    return spawned, {"authorization_url": line.split(": ", 1)[1].strip()}


def redirect_uri_of(authorization_url: str) -> str:
    return parse_qs(urlsplit(authorization_url).query)["redirect_uri"][0]


def sign_in(sandbox: Sandbox, authorization_url: str) -> str:
    """The provider's part of the browser: sign in, and where it sends the browser back."""
    with httpx.Client(verify=ca_context(sandbox.ca_file), timeout=10) as browser:
        answer = browser.get(authorization_url)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def follow(location: str, *, via: str | None = None) -> httpx.Response:
    """The browser loading the redirect; `via` connects to that address instead of resolving
    the host, as a browser that resolved localhost to ::1 does."""
    url = httpx.URL(location)
    headers = {}
    if via is not None:
        headers["Host"] = f"{url.host}:{url.port}"
        url = url.copy_with(host=via)
    with httpx.Client(timeout=10, trust_env=False) as browser:
        return browser.get(url, headers=headers)


def acquired(spawned: Spawned) -> None:
    done = spawned.next_event()
    code, err = spawned.finish()
    assert (code, done["event"], done["state"]) == (0, "done", "acquired"), err


def no_secret_shown(cli: Cli, location: str, authorization_url: str) -> None:
    """Neither the code nor the state is shown, except the state in the address to open."""
    query = parse_qs(urlsplit(location).query)
    output = cli.all_output().replace(authorization_url, "")
    for name in ("code", "state"):
        assert query[name][0] not in output, name


# --- the registered redirect URI, sent exactly ------------------------------------------------


def test_microsoft_like_localhost_registration(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(redirect_uris=["http://localhost"])
    spawned, prompt = start(cli, sandbox, "--redirect-uri", "http://localhost")
    sent = redirect_uri_of(prompt["authorization_url"])
    assert re.fullmatch(r"http://localhost:\d+", sent), sent
    assert prompt["redirect_uri"] == sent

    location = sign_in(sandbox, prompt["authorization_url"])
    assert location.startswith(sent + "?")
    page = follow(location)

    assert page.status_code == 200
    acquired(spawned)
    assert cli.status()["smtp"]["state"] == "acquired"


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_localhost_redirect_arrives_over_ipv6(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(redirect_uris=["http://localhost"])
    spawned, prompt = start(cli, sandbox, "--redirect-uri", "http://localhost")

    page = follow(sign_in(sandbox, prompt["authorization_url"]), via="::1")

    assert page.status_code == 200
    acquired(spawned)


def test_a_registered_path_and_port(cli: Cli, sandbox: Sandbox) -> None:
    port = free_port()
    registered = f"http://127.0.0.1:{port}/tokenpost/cb/"
    sandbox.control.config(redirect_uris=["http://127.0.0.1/tokenpost/cb/"])
    spawned, prompt = start(cli, sandbox, "--redirect-uri", registered)
    assert redirect_uri_of(prompt["authorization_url"]) == registered

    location = sign_in(sandbox, prompt["authorization_url"])
    assert location.startswith(registered + "?")
    assert follow(location).status_code == 200
    acquired(spawned)
    stats = sandbox.control.stats()
    assert stats.grants_by_type["authorization_code"] == 1


def test_a_registered_port_another_program_holds_is_refused_with_the_fix(
    cli: Cli, sandbox: Sandbox
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        cli.add_sandbox_provider(
            sandbox, "--flow", "browser", "--redirect-uri", f"http://127.0.0.1:{port}/cb"
        )
        cli.set_smtp()
        result = cli.run("token", "get", "smtp")

    assert result.returncode == 1
    assert f"cannot use port {port} on 127.0.0.1: another program listens there" in result.stderr
    assert "register the redirect URI without a port" in result.stderr
    row = cli.status()["smtp"]
    assert (row["state"], row["reason"]) == ("not_acquired", None)  # no flow was started


# --- nothing comes back: the hint ----------------------------------------------------------------


def test_an_unregistered_redirect_gives_the_hint_and_ends_cleanly(
    cli: Cli, sandbox: Sandbox
) -> None:
    cli.extra_env["TOKENPOST_TEST_REDIRECT_HINT_AFTER"] = "1"
    sandbox.control.config(redirect_uris=["http://127.0.0.1/registered-elsewhere"])
    spawned, prompt = start(cli, sandbox)
    with httpx.Client(verify=ca_context(sandbox.ca_file), timeout=10) as browser:
        error_page = browser.get(prompt["authorization_url"])
    assert error_page.status_code == 400  # the provider's page; nothing reaches tokenpost

    hint = spawned.next_event()
    spawned.interrupt()
    done = spawned.next_event()
    code, err = spawned.finish()

    assert hint["event"] == "redirect_hint"
    assert hint["registered_redirect_uri"] == "http://127.0.0.1"
    assert hint["redirect_uri"] == prompt["redirect_uri"]
    assert "here http://127.0.0.1 exactly" in hint["hint"]
    assert "callback URL or reply URL" in hint["hint"]
    assert "means that it is not registered" in hint["hint"]
    assert "paste it here" not in hint["hint"]  # standard input is /dev/null: nobody can paste
    assert (code, done["event"], done["state"]) == (130, "done", "not_acquired")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", "No answer from the browser yet. The provider sends the browser back only"),
        ("de", "Noch keine Antwort vom Browser. Der Anbieter schickt den Browser nur"),
    ],
)
def test_the_hint_on_the_terminal(cli: Cli, sandbox: Sandbox, lang: str, words: str) -> None:
    cli.extra_env["TOKENPOST_TEST_REDIRECT_HINT_AFTER"] = "1"
    cli.extra_env["TOKENPOST_LANG"] = lang
    cli.add_sandbox_provider(sandbox, "--flow", "browser")
    cli.set_smtp()
    spawned = cli.spawn_interactive("token", "get", "smtp")

    line = spawned.wait_for_err_line(re.compile(re.escape(words)))
    spawned.interrupt()
    code, err = spawned.finish()

    assert "http://127.0.0.1" in line
    assert code == 130
    assert "Traceback" not in err


# --- a host without a browser: the address pasted on the terminal -------------------------------


def test_the_pasted_address_completes_the_flow(cli: Cli, sandbox: Sandbox) -> None:
    spawned, prompt = start(cli, sandbox, interactive=True)
    assert prompt["can_paste"] is True
    location = sign_in(sandbox, prompt["authorization_url"])  # not followed: another device

    spawned.type_line(location)

    done = spawned.next_event()
    # It ends with standard input still open: the thread reading it does not keep it alive.
    assert spawned.process.wait(timeout=30) == 0
    assert spawned.finish()[0] == 0
    assert done["state"] == "acquired"
    assert cli.status()["smtp"]["state"] == "acquired"
    no_secret_shown(cli, location, prompt["authorization_url"])


def test_a_tampered_paste_is_refused_and_waiting_goes_on(cli: Cli, sandbox: Sandbox) -> None:
    spawned, prompt = start(cli, sandbox, interactive=True, json=False)
    location = sign_in(sandbox, prompt["authorization_url"])
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    tampered = urlunsplit(parts._replace(query=urlencode({**query, "state": "forged-state"})))

    spawned.type_line(tampered)
    refused = spawned.wait_for_err_line(re.compile(r"Address not accepted"))
    spawned.type_line("http://example.com/elsewhere?code=x")
    elsewhere = spawned.wait_for_err_line(re.compile(r"Address not accepted"))
    spawned.type_line(location)
    spawned.wait_for_line(re.compile(r"Token acquired"))
    code, err = spawned.finish()

    assert "pasted address: state mismatch" in refused
    assert "is not this authorization's redirect address http://127.0.0.1:" in elsewhere
    assert code == 0, err
    assert sandbox.control.stats().grants_by_type["authorization_code"] == 1
    no_secret_shown(cli, location, prompt["authorization_url"])


def test_the_prompt_says_pasting_is_possible(cli: Cli, sandbox: Sandbox) -> None:
    spawned, prompt = start(cli, sandbox, interactive=True, json=False)
    line = spawned.wait_for_line(re.compile(r"No browser on this host\?"))
    spawned.type_line(sign_in(sandbox, prompt["authorization_url"]))
    spawned.wait_for_line(re.compile(r"Token acquired"))

    assert spawned.finish()[0] == 0
    assert "starting with http://127.0.0.1:" in line
    assert "paste it here and press Enter" in line


def test_a_pasted_denial_ends_the_flow_as_denied(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(browser_decision="deny")
    spawned, prompt = start(cli, sandbox, interactive=True)

    spawned.type_line(sign_in(sandbox, prompt["authorization_url"]))
    done = spawned.next_event()
    code, err = spawned.finish()

    assert (code, done["state"]) == (1, "not_acquired")
    assert "denied" in err
