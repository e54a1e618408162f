"""The real CLI against the sandbox: the browser flow (auth code + PKCE on a loopback redirect),
and deleting a token."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cli_support import Cli, Spawned

from sandbox_support import Sandbox, ca_context

pytestmark = pytest.mark.slow


def play_browser(sandbox: Sandbox, authorization_url: str) -> httpx.Response:
    """What the administrator's browser does: open the URL, follow the redirect to loopback."""
    with httpx.Client(verify=ca_context(sandbox.ca_file), timeout=10) as browser:
        answer = browser.get(authorization_url)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith("http://127.0.0.1:")
        return httpx.get(location, timeout=10, trust_env=False)


def start_browser_get(cli: Cli, sandbox: Sandbox) -> tuple[Spawned, str]:
    cli.add_sandbox_provider(sandbox, "--flow", "browser")
    cli.set_smtp()
    spawned = cli.spawn("token", "get", "smtp", "--json")
    prompt = spawned.next_event()
    assert prompt["event"] == "open_browser"
    url = str(prompt["authorization_url"])
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert "code_verifier" not in query
    return spawned, url


def test_browser_flow_acquires(cli: Cli, sandbox: Sandbox) -> None:
    spawned, url = start_browser_get(cli, sandbox)
    page = play_browser(sandbox, url)
    assert page.status_code == 200
    done = spawned.next_event()
    code, err = spawned.finish()
    assert (code, done["state"]) == (0, "acquired"), err
    assert cli.status()["smtp"]["state"] == "acquired"


@pytest.mark.parametrize(
    ("knob", "message"),
    [
        ({"redirect_state_override": "forged-state"}, "state"),
        ({"redirect_iss_override": "https://evil.example"}, "iss"),
        ({"browser_decision": "deny"}, "denied"),
    ],
)
def test_browser_flow_refuses_a_bad_redirect(
    cli: Cli, sandbox: Sandbox, knob: dict[str, str], message: str
) -> None:
    sandbox.control.config(**knob)
    spawned, url = start_browser_get(cli, sandbox)
    play_browser(sandbox, url)
    done = spawned.next_event()
    code, err = spawned.finish()
    assert code == 1
    assert done["state"] == "not_acquired"
    assert message in err, err
    assert "Traceback" not in err
    assert sandbox.control.stats().grants_by_type.get("authorization_code", 0) == 0


def test_delete_revokes_and_forgets(cli: Cli, sandbox: Sandbox) -> None:
    spawned, url = start_browser_get(cli, sandbox)
    play_browser(sandbox, url)
    assert spawned.finish()[0] == 0

    refused = cli.run("token", "delete", "smtp")  # no --yes, no answer on stdin
    assert refused.returncode != 0
    assert cli.status()["smtp"]["state"] == "acquired"

    out = cli.ok("token", "delete", "smtp", "--yes")
    assert "Token deleted (" in out
    assert "revoked" in out
    assert cli.status()["smtp"]["state"] == "not_acquired"
    assert any(r.reason == "revocation" for r in sandbox.control.stats().revoked)


def test_delete_without_a_reachable_provider_still_forgets(cli: Cli, sandbox: Sandbox) -> None:
    spawned, url = start_browser_get(cli, sandbox)
    play_browser(sandbox, url)
    assert spawned.finish()[0] == 0
    sandbox.control.fault("revoke", "http_503")
    out = cli.ok("token", "delete", "smtp", "--yes")
    assert "Token deleted (" in out
    assert cli.status()["smtp"]["state"] == "not_acquired"
