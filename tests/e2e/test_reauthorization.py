"""Re-obtaining a token never takes a working setting down (the real CLI, the sandbox
authorization server and the sandbox SMTP server): mail keeps going while a new authorization is
pending, and however the authorization ends without a grant — denied, expired, Ctrl-C, SIGTERM,
SIGHUP, kill -9 — the previous token is in force again."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cli_support import ACCOUNT, Cli, Spawned, acquire_by_device_flow, leaked_tokens
from test_send_command import configure_sandbox_smtp

from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox

pytestmark = pytest.mark.slow

PROMPT_LINE = re.compile(r"enter the code ([A-Z0-9]{4}-[A-Z0-9]{4})")
CODE = re.compile(r"[A-Z0-9]{4}-[A-Z0-9]{4}")


def working(cli: Cli, sandbox: Sandbox, peer: SmtpSandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    configure_sandbox_smtp(cli, peer)
    acquire_by_device_flow(cli, sandbox)


def send(cli: Cli, subject: str) -> None:
    cli.ok("send", "--to", "ops@example.test", "--subject", subject, "--body", "still working")


def reauthorize(cli: Cli) -> tuple[Spawned, dict[str, object]]:
    spawned = cli.spawn("token", "get", "smtp", "--json", "--yes")
    prompt = spawned.next_event()
    assert prompt["event"] == "authorization_required"
    return spawned, prompt


def device_grants(sandbox: Sandbox) -> int:
    return sandbox.control.stats().requests.get("device", 0)


def test_mail_keeps_working_while_a_new_authorization_is_pending(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    working(cli, sandbox, smtp_peer)
    before = cli.status()["smtp"]
    spawned, prompt = reauthorize(cli)
    row = cli.status()["smtp"]  # exit 0: the previous token is in force
    assert (row["state"], row["label"]) == (
        "waiting_for_authorization",
        "Waiting for authorization",
    )
    assert (row["previous_state"], row["previous_expires_at"]) == ("acquired", before["expires_at"])
    assert row["in_force"] is True
    text = cli.run("token", "status")
    assert text.returncode == 0
    assert "Waiting for authorization" in text.stdout
    assert "the previous token stays in force until" in text.stdout
    send(cli, "during the re-authorization")
    sandbox.control.approve(str(prompt["user_code"]), user=ACCOUNT)
    done = spawned.next_event()
    assert spawned.finish()[0] == 0
    assert done["state"] == "acquired"
    send(cli, "with the new token")
    assert len(smtp_peer.messages()) == 2
    assert leaked_tokens(cli) == []


@pytest.mark.parametrize("action", ["deny", "expire"])
def test_an_authorization_that_ends_without_a_grant_restores_the_token(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, action: str
) -> None:
    working(cli, sandbox, smtp_peer)
    spawned, prompt = reauthorize(cli)
    getattr(sandbox.control, action)(str(prompt["user_code"]))
    done = spawned.next_event()
    code, err = spawned.finish()
    assert code == 1
    assert done["state"] == "acquired"
    assert "Authorization ended:" in err
    assert "The previous token stays in force (valid until" in err
    assert "Traceback" not in err
    assert cli.status()["smtp"]["state"] == "acquired"
    send(cli, f"after {action}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_an_interrupted_authorization_exits_130_and_keeps_the_token(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, signum: signal.Signals
) -> None:
    working(cli, sandbox, smtp_peer)
    spawned = cli.spawn("token", "get", "smtp", "--yes")
    spawned.wait_for_line(PROMPT_LINE)
    spawned.process.send_signal(signum)
    code, err = spawned.finish()
    assert code == 130, err
    assert "Authorization cancelled. The previous token stays in force (valid until" in err
    assert "Traceback" not in err
    row = cli.status()["smtp"]
    assert row["state"] == "acquired"
    send(cli, f"after {signum.name}")


def test_german_cancellation(cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox) -> None:
    working(cli, sandbox, smtp_peer)
    spawned = cli.spawn("--lang", "de", "token", "get", "smtp", "--yes")
    spawned.wait_for_line(CODE)
    spawned.interrupt()
    code, err = spawned.finish()
    assert code == 130
    assert "Autorisierung abgebrochen." in err


def test_after_kill_9_the_previous_token_is_back(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox
) -> None:
    working(cli, sandbox, smtp_peer)
    spawned, _prompt = reauthorize(cli)
    spawned.process.kill()
    spawned.finish()
    row = cli.status()["smtp"]  # read through: the owner is gone
    assert row["state"] == "acquired"
    assert cli.run("token", "status", "smtp").returncode == 0
    send(cli, "after kill -9")
    # A new `token get` asks again: the token works.
    refused = cli.run("token", "get", "smtp")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr


# -- the confirmation ------------------------------------------------------------------------------


@contextmanager
def on_a_terminal(cli: Cli, *args: str, answer: str) -> Iterator[Spawned]:
    """`tokenpost ARGS` with a terminal on standard input, `answer` typed into it."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenpost", *args],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(),
    )
    os.close(terminal)
    os.write(controller, answer.encode())
    spawned = Spawned(process, cli)
    try:
        yield spawned
    finally:
        if process.poll() is None:
            spawned.kill()
        os.close(controller)


QUESTIONS = {"en": "has a working token", "de": "hat ein funktionierendes Token"}


@pytest.mark.parametrize(("language", "answer"), [("en", "y\n"), ("de", "j\n"), ("de", "ja\n")])
def test_replacing_a_working_token_is_confirmed(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, language: str, answer: str
) -> None:
    asked = QUESTIONS[language]
    working(cli, sandbox, smtp_peer)
    with on_a_terminal(cli, "--lang", language, "token", "get", "smtp", answer=answer) as spawned:
        # The question ends without a newline: it shares a line with what follows it.
        question = spawned.wait_for_line(re.compile(re.escape(asked)))
        assert ("[j/N]" if language == "de" else "[y/N]") in question
        codes = re.findall(r"[A-Z0-9]{4}-[A-Z0-9]{4}", question)
        if not codes:
            codes = re.findall(r"[A-Z0-9]{4}-[A-Z0-9]{4}", spawned.wait_for_line(CODE))
        sandbox.control.approve(codes[-1], user=ACCOUNT)
        code, err = spawned.finish()
        assert code == 0, err
    assert cli.status()["smtp"]["state"] == "acquired"


def test_declining_changes_nothing(cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox) -> None:
    working(cli, sandbox, smtp_peer)
    before = device_grants(sandbox)
    with on_a_terminal(cli, "token", "get", "smtp", answer="n\n") as spawned:
        code, err = spawned.finish()
    assert code == 1
    assert "Aborted." in err
    assert device_grants(sandbox) == before
    assert cli.status()["smtp"]["state"] == "acquired"


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["text", "json"])
def test_without_a_terminal_a_working_token_needs_yes(
    cli: Cli, sandbox: Sandbox, smtp_peer: SmtpSandbox, extra: list[str]
) -> None:
    working(cli, sandbox, smtp_peer)
    before = device_grants(sandbox)
    result = cli.run("token", "get", "smtp", *extra)
    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert device_grants(sandbox) == before
    german = cli.run("--lang", "de", "token", "get", "smtp")
    assert german.returncode == 2
    assert "--yes" in german.stderr
    assert "funktionierendes Token" in german.stderr


def test_a_setting_without_a_working_token_is_not_asked_about(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    spawned = cli.spawn("token", "get", "smtp", "--json")  # no terminal, no --yes: not asked
    prompt = spawned.next_event()
    sandbox.control.approve(str(prompt["user_code"]), user=ACCOUNT)
    assert spawned.next_event()["state"] == "acquired"
    assert spawned.finish()[0] == 0
