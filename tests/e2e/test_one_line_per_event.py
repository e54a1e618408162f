"""Each event is one log line: the real wiring (services, their event hook, the alerter) against
the sandbox authorization server, in one process as `serve` runs them."""

from __future__ import annotations

import asyncio
import logging

import pytest
from cli_support import ACCOUNT, Cli

from sandbox_support import Sandbox
from tokenpost.services.authorize import DevicePrompt, Prompt
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.wiring import open_app

pytestmark = pytest.mark.slow


def the_line_of(record: logging.LogRecord) -> tuple[str, str]:
    """(event, setting) of an event's line; any other line shows as (level, message)."""
    event = getattr(record, "event", None)
    if event is None:
        return record.levelname, record.getMessage()
    return event, getattr(record, "setting", "")


def test_acquire_refresh_delete_and_invalid_log_one_line_each(
    cli: Cli, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.control.config(device_interval=0)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()

    async def approve(prompt: Prompt) -> None:
        assert isinstance(prompt, DevicePrompt)
        await asyncio.to_thread(sandbox.control.approve, prompt.user_code, user=ACCOUNT)

    async def events() -> None:
        async with open_app(cli.home, cli.env()) as app:
            await app.authorizer.obtain("smtp", approve)
            # A mail server refusing the token makes the service refresh it at once.
            await app.refresher.renew("smtp", await app.refresher.access_token("smtp"))
            await app.deleter.delete("smtp")
            await app.authorizer.obtain("smtp", approve)
            await asyncio.to_thread(sandbox.control.revoke_user, ACCOUNT)
            with pytest.raises(TokenUnavailableError):
                await app.refresher.renew("smtp", await app.refresher.access_token("smtp"))

    with caplog.at_level(logging.INFO, logger="tokenpost"):
        asyncio.run(events())

    lines = [the_line_of(r) for r in caplog.records if r.name.startswith("tokenpost")]
    assert lines == [
        ("authorization_required", "smtp"),
        ("token_acquired", "smtp"),
        ("token_refreshed", "smtp"),
        ("token_deleted", "smtp"),
        ("authorization_required", "smtp"),
        ("token_acquired", "smtp"),
        ("token_invalid", "smtp"),
    ]
    invalid = caplog.records[-1]
    assert invalid.levelno == logging.WARNING
    assert "invalid_grant" in invalid.getMessage()
