"""A device authorization begun by a request in one process (`Authorizer.begin`, as the web page's
[Get Token] does) is carried by the real `tokenpost serve` of another: it polls the flow while its
owner lives and approval arrives, and records its end as orphaned once the owner is gone (the
previous token in force again)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cli_support import ACCOUNT, Cli, acquire_by_device_flow, leaked_tokens, wait_for

from sandbox_support import Sandbox
from tokenpost.services.authorize import DevicePrompt
from tokenpost.tokens.state import TokenState, WaitingForAuthorization
from tokenpost.wiring import open_app, open_reader

pytestmark = pytest.mark.slow

T = TypeVar("T")


def start_serve(cli: Cli) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tokenpost", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(),
    )


def stop(serve: subprocess.Popen[str], cli: Cli) -> str:
    serve.send_signal(signal.SIGTERM)
    out, err = serve.communicate(timeout=30)
    cli.outputs += [out, err]
    assert serve.returncode == 0, err
    return err


def stored_state(home: Path) -> TokenState:
    """The state as stored (not read through the end of a flow, as `token status` reads it)."""

    async def read() -> TokenState:
        async with open_reader(home, {}) as store:
            return (await store.load_token("smtp")).state

    return asyncio.run(read())


async def while_owning(home: Path, then: Callable[[DevicePrompt], Awaitable[T]]) -> T:
    """Begin a device flow in this process (its owner), run `then` while it lives."""
    async with open_app(home, {}) as app:
        prompt = await app.authorizer.begin("smtp")
        assert isinstance(prompt, DevicePrompt)
        return await then(prompt)


def token_requests(sandbox: Sandbox) -> int:
    return sandbox.control.stats().requests.get("token", 0)


def test_serve_polls_a_flow_another_live_process_began(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    serves: list[subprocess.Popen[str]] = []

    async def approve_and_wait(prompt: DevicePrompt) -> None:
        row = cli.status()["smtp"]
        assert row["state"] == "waiting_for_authorization"
        assert row["user_code"] == prompt.user_code
        serves.append(start_serve(cli))  # a serve started after the flow began
        await asyncio.to_thread(sandbox.control.approve, prompt.user_code, user=ACCOUNT)
        await asyncio.to_thread(
            wait_for,
            lambda: cli.status()["smtp"]["state"] == "acquired",
            20,
            "serve to complete the flow",
        )

    try:
        asyncio.run(while_owning(cli.home, approve_and_wait))
    finally:
        err = stop(serves[0], cli) if serves else ""
    assert "smtp: token acquired" in err
    assert leaked_tokens(cli) == []


def test_serve_ends_a_flow_whose_owner_is_gone(cli: Cli, sandbox: Sandbox) -> None:
    sandbox.control.config(device_interval=1)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    acquire_by_device_flow(cli, sandbox)
    before = cli.status()["smtp"]
    serves: list[subprocess.Popen[str]] = []

    async def polled_then_gone(prompt: DevicePrompt) -> DevicePrompt:
        polls = token_requests(sandbox)
        serves.append(start_serve(cli))
        await asyncio.to_thread(
            wait_for, lambda: token_requests(sandbox) > polls + 1, 20, "serve to poll the flow"
        )
        assert isinstance(await asyncio.to_thread(stored_state, cli.home), WaitingForAuthorization)
        return prompt  # leaving `open_app` ends this process's ownership

    try:
        prompt = asyncio.run(while_owning(cli.home, polled_then_gone))
        wait_for(
            lambda: not isinstance(stored_state(cli.home), WaitingForAuthorization),
            20,
            "serve to record the end of the orphaned flow",
        )
        sandbox.control.approve(prompt.user_code, user=ACCOUNT)  # too late: nobody polls it
    finally:
        err = stop(serves[0], cli) if serves else ""
    assert "authorization of smtp ended: the authorization was abandoned" in err
    row = cli.status()["smtp"]
    assert (row["state"], row["expires_at"]) == ("acquired", before["expires_at"])
