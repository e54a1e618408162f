"""Refresh cost: N refreshes through tokenpost's refresh path against the sandbox, vs N bare
httpx POSTs of the same refresh grant to the same token endpoint, in one run.

Target: <= 1.5x. tokenpost's path is the real one: `Refresher.access_token` with every token due
(flight lock, store read and decrypt, request, parse, compare-and-set write with encryption and
fsync). The baseline is what a hand-written client does at the least: POST the grant, parse the
JSON, keep the rotated refresh token. Both use one HTTPS connection to the same sandbox; the
baseline runs before and after tokenpost and its mean is used.

    .venv/bin/python bench/refresh.py [--count 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sandbox_support import SandboxControl, start_sandbox
from tokenpost.clock import SystemClock
from tokenpost.secret import Secret
from tokenpost.services.authorize import DevicePrompt, Prompt
from tokenpost.settings.model import AuthMethod, Flow, Preset, Provider, Security, SmtpSetting
from tokenpost.tokens.state import Acquired
from tokenpost.wiring import App, open_app

ACCOUNT = "alice@example.test"


async def acquire(
    app: App, issuer: str, ca_file: Path, client_id: str, control: SandboxControl
) -> Acquired:
    await app.settings.put_provider(
        Provider("sbx", Preset.GENERIC, client_id, flow=Flow.DEVICE, issuer=issuer,
                 scope=("mail.send", "offline_access"), ca_file=str(ca_file))
    )  # fmt: skip
    await app.settings.put_smtp(
        SmtpSetting("smtp.example.test", 587, Security.STARTTLS, 30, "Bench",
                    "bench@example.test", AuthMethod.OAUTH2, provider="sbx", account=ACCOUNT)
    )  # fmt: skip

    async def approve(prompt: Prompt) -> None:
        assert isinstance(prompt, DevicePrompt)
        await asyncio.to_thread(control.approve, prompt.user_code, user=ACCOUNT)

    return await app.authorizer.obtain("smtp", approve)


async def baseline(
    issuer: str, ca_file: Path, client_id: str, refresh: str, n: int
) -> tuple[float, str]:
    context = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(verify=context) as client:
        start = time.perf_counter()
        for _ in range(n):
            response = await client.post(
                issuer + "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh,
                    "client_id": client_id,
                },
            )
            body = response.json()
            assert response.status_code == 200, body
            refresh = body.get("refresh_token", refresh)
        return time.perf_counter() - start, refresh


class JumpingClock(SystemClock):
    """Real time plus an offset that `jump` moves past any token's expiry."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset

    def jump(self) -> None:
        self.offset += 10 * 3600


async def ours(app: App, clock: JumpingClock, control: SandboxControl, n: int) -> float:
    """n calls, each finding the token expired: each one refreshes (checked at the sandbox)."""
    before = control.stats().grants_by_type.get("refresh_token", 0)
    start = time.perf_counter()
    for _ in range(n):
        clock.jump()
        await app.refresher.access_token("smtp")
    elapsed = time.perf_counter() - start
    assert control.stats().grants_by_type.get("refresh_token", 0) - before == n
    return elapsed


async def run(count: int, work: Path) -> None:
    sandbox = start_sandbox(work / "sandbox")
    try:
        ready = sandbox.ready
        with SandboxControl.of(ready) as control:
            control.config(device_interval=1)
            env = {**os.environ, "TOKENPOST_HOME": str(work / "home")}
            clock = JumpingClock()
            async with open_app(work / "home", env, clock=clock) as app:
                token = await acquire(
                    app, ready.issuer, ready.ca_file, ready.clients.public, control
                )
                assert token.refresh_token is not None
                await ours(app, clock, control, 20)  # warm-up: connection, caches
                state = (await app.store.load_token("smtp")).state
                assert isinstance(state, Acquired)
                assert isinstance(state.refresh_token, Secret)
                # The baseline continues the same grant from tokenpost's current refresh token,
                # then hands the newest one back so tokenpost can go on.
                t_base1, rt = await baseline(ready.issuer, ready.ca_file, ready.clients.public,
                                             state.refresh_token.reveal(), count)  # fmt: skip
                await _store_refresh_token(app, rt)
                t_ours = await ours(app, clock, control, count)
                state = (await app.store.load_token("smtp")).state
                assert isinstance(state, Acquired)
                assert state.refresh_token is not None
                t_base2, _ = await baseline(ready.issuer, ready.ca_file, ready.clients.public,
                                            state.refresh_token.reveal(), count)  # fmt: skip
            assert control.stats().refresh_replays == 0
    finally:
        sandbox.stop()
    t_base = (t_base1 + t_base2) / 2
    print(
        f"bare httpx POST + JSON   {count} refreshes: {t_base:.2f} s "
        f"({t_base1:.2f} s before, {t_base2:.2f} s after), {t_base / count * 1000:.2f} ms each"
    )
    print(
        f"tokenpost refresh path   {count} refreshes: {t_ours:.2f} s, "
        f"{t_ours / count * 1000:.2f} ms each"
    )
    print(f"ratio {t_ours / t_base:.2f}x (target <= 1.5x)")


async def _store_refresh_token(app: App, refresh: str) -> None:
    from dataclasses import replace

    record = await app.store.load_token("smtp")
    assert isinstance(record.state, Acquired)
    await app.store.save_token(
        "smtp", replace(record.state, refresh_token=Secret(refresh)),
        binding=record.binding, expected_version=record.version,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.count, Path(tmp)))


if __name__ == "__main__":
    main()
