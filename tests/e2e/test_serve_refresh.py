"""`tokenpost serve` keeps tokens fresh; processes sharing a home never replay a refresh token."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from cli_support import Cli, acquire_by_device_flow, leaked_tokens, wait_for

from sandbox_support import Sandbox

pytestmark = pytest.mark.slow


def prepared(cli: Cli, sandbox: Sandbox, lifetime: int = 4) -> None:
    sandbox.control.config(device_interval=1, access_token_lifetime=lifetime)
    cli.add_sandbox_provider(sandbox)
    cli.set_smtp()
    acquire_by_device_flow(cli, sandbox)


def stop(process: subprocess.Popen[str], cli: Cli) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    cli.outputs += [out, err]
    return process.returncode, err


def start_serve(cli: Cli, *root_options: str) -> subprocess.Popen[str]:
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "tokenpost", *root_options, "serve", "--no-web"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env(),
    )


def four_refreshes_or_a_replay(sandbox: Sandbox) -> bool:
    stats = sandbox.control.stats()
    return stats.grants_by_type.get("refresh_token", 0) >= 4 or stats.refresh_replays > 0


def test_serve_refreshes_ahead_of_expiry_and_stops_on_sigterm(cli: Cli, sandbox: Sandbox) -> None:
    prepared(cli, sandbox)
    serve = start_serve(cli, "--debug")  # the most talkative logs must not show a token either
    try:
        wait_for(
            lambda: sandbox.control.stats().grants_by_type.get("refresh_token", 0) >= 3,
            timeout=40,
            what="three refreshes",
        )
    finally:
        code, err = stop(serve, cli)
    assert code == 0, err
    assert "Traceback" not in err
    stats = sandbox.control.stats()
    assert stats.refresh_replays == 0
    assert cli.status()["smtp"]["state"] == "acquired"
    assert "smtp: token refreshed" in cli.all_output()  # the logs were read
    assert leaked_tokens(cli) == []


def test_two_processes_racing_never_replay(cli: Cli, sandbox: Sandbox) -> None:
    prepared(cli, sandbox)
    sandbox.control.config(response_delay=0.3)  # widen the window a race would need
    serves = [start_serve(cli), start_serve(cli)]
    try:
        wait_for(lambda: four_refreshes_or_a_replay(sandbox), timeout=60, what="refreshes")
    finally:
        for serve in serves:
            stop(serve, cli)
    stats = sandbox.control.stats()
    assert stats.refresh_replays == 0
    assert not any(r.reason == "replay" for r in stats.revoked)
    assert cli.status()["smtp"]["state"] == "acquired"


def test_revoked_grant_becomes_invalid_with_reason(cli: Cli, sandbox: Sandbox) -> None:
    prepared(cli, sandbox)
    sandbox.control.revoke_user("alice@example.test")
    serve = start_serve(cli)
    try:
        wait_for(lambda: cli.status()["smtp"]["state"] == "invalid", timeout=30, what="invalid")
    finally:
        stop(serve, cli)
    row = cli.status()["smtp"]
    assert row["label"] == "Invalid"
    assert "invalid_grant" in row["reason"]


def test_200_concurrent_requests_on_an_expired_token_cause_one_refresh(
    cli: Cli, sandbox: Sandbox
) -> None:
    prepared(cli, sandbox, lifetime=1)
    from tokenpost.wiring import open_app

    async def race() -> set[str]:
        env = cli.env()
        async with open_app(cli.home, env) as app:
            app.refresher.margin = 0
            await asyncio.sleep(1.5)  # the access token is now expired
            before = sandbox.control.stats().requests.get("token", 0)
            tokens = await asyncio.gather(*(app.refresher.access_token("smtp") for _ in range(200)))
            after = sandbox.control.stats().requests.get("token", 0)
            assert after - before == 1
            return {t.reveal() for t in tokens}

    assert len(asyncio.run(race())) == 1
    assert os.stat(cli.home).st_mode & 0o777 == 0o700


def test_a_broken_token_endpoint_never_invalidates_the_token(cli: Cli, sandbox: Sandbox) -> None:
    prepared(cli, sandbox)
    sandbox.control.fault("token", "non_json", count=2)
    serve = start_serve(cli)
    try:
        wait_for(
            lambda: (cli.status()["smtp"]["reason"] or "") != "",
            timeout=30,
            what="the failure to show",
        )
        row = cli.status()["smtp"]
        assert row["state"] == "acquired"
        assert row["refresh_failures"] >= 1
        wait_for(
            lambda: sandbox.control.stats().grants_by_type.get("refresh_token", 0) >= 1,
            timeout=40,
            what="a refresh after the fault",
        )
    finally:
        stop(serve, cli)
    assert cli.status()["smtp"]["state"] == "acquired"


def test_two_instances_sharing_postgres_never_replay(sandbox: Sandbox, tmp_path: Path) -> None:
    """Two "hosts" (separate homes, so no shared file lock) on one PostgreSQL store and key:
    only the advisory lock keeps them from refreshing the same token at once."""
    from pg_support import fresh_database, store_url

    with fresh_database("tokenpost_e2e") as database:
        key = tmp_path / "shared.key"
        shared = {"TOKENPOST_STORE_URL": store_url(database), "TOKENPOST_KEY_FILE": str(key)}
        host_a = Cli(tmp_path / "host-a", extra_env=dict(shared))
        host_b = Cli(tmp_path / "host-b", extra_env=dict(shared))
        prepared(host_a, sandbox)
        assert host_b.status()["smtp"]["state"] == "acquired"  # one store, seen from both
        sandbox.control.config(response_delay=0.3)
        serves = [start_serve(host_a), start_serve(host_b)]
        try:
            wait_for(lambda: four_refreshes_or_a_replay(sandbox), timeout=60, what="refreshes")
        finally:
            for serve, cli in zip(serves, (host_a, host_b), strict=True):
                stop(serve, cli)
        stats = sandbox.control.stats()
        assert stats.refresh_replays == 0
        assert host_b.status()["smtp"]["state"] == "acquired"
        assert leaked_tokens(host_a) == []
