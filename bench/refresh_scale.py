"""Many due refreshes in one scheduler pass against the sandbox, vs a bare httpx POST loop of as
many refresh grants, in one run.

A home of --count POP settings (and the SMTP setting), all on one sandbox provider, every token
expired, so the next scheduler pass refreshes every one of them: concurrently, within the
scheduler's bounds (32 in all, 8 per provider), each through the real refresh path (flight
lock, compare-and-set write with encryption). The sandbox does not rotate refresh tokens here,
so all settings can hold the refresh token of one device grant.

Reported, each beside the baseline (one HTTPS connection, POST the grant, parse the JSON):
- CPU per refresh (this process: `time.process_time`, the store's threads included). Target
  (issue 10): <= 1.5x the baseline's CPU per request.
- Wall time of the pass, and of the baseline loop.
- Refresh grants counted at the sandbox: exactly one per token (checked, else it fails).

    .venv/bin/python bench/refresh_scale.py [--count 10000]
    .venv/bin/python bench/refresh_scale.py --count 20     # checks that it works
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
from refresh import acquire  # bench/refresh.py: the provider, the SMTP setting, one grant

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sandbox_support import Ready, SandboxControl, start_sandbox
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired
from tokenpost.wiring import App, open_app


async def expired_tokens(app: App, work: Path, count: int, grant: Acquired) -> list[str]:
    """`count` POP settings on the provider, each holding `grant` expired a minute ago."""
    for n in range(count):
        await app.store.put_pop(
            PopSetting(f"box{n:05d}", "pop.example.test", 995, Security.TLS, 3600,
                       AuthMethod.OAUTH2, str(work / "mail" / f"box{n:05d}"),
                       provider="sbx", account="alice@example.test")
        )  # fmt: skip
    expired = replace(grant, expires_at=time.time() - 60)
    setting_ids = ["smtp", *(f"pop:box{n:05d}" for n in range(count))]
    for setting_id in setting_ids:
        target = await load_target(app.store, setting_id)
        record = await app.store.load_token(setting_id)
        await app.store.save_token(
            setting_id, expired, binding=target.binding, expected_version=record.version
        )
    return setting_ids


async def baseline(ready: Ready, refresh: str, n: int) -> tuple[float, float]:
    """CPU and wall seconds of n refresh grants POSTed one after another."""
    context = ssl.create_default_context(cafile=str(ready.ca_file))
    grant = {"grant_type": "refresh_token", "refresh_token": refresh,
             "client_id": ready.clients.public}  # fmt: skip
    async with httpx.AsyncClient(verify=context) as client:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            response = await client.post(ready.issuer + "/token", data=grant)
            body = response.json()
            assert response.status_code == 200, body
        return time.process_time() - cpu, time.perf_counter() - wall


async def one_pass(app: App, control: SandboxControl) -> tuple[float, float, int, int]:
    """CPU and wall seconds of one scheduler pass; refresh grants counted at the sandbox
    meanwhile, and the tokens fresh afterwards."""
    before = control.stats().grants_by_type.get("refresh_token", 0)
    scheduler = app.scheduler()
    cpu, wall = time.process_time(), time.perf_counter()
    await scheduler.tick()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    counted = control.stats().grants_by_type.get("refresh_token", 0) - before
    now = time.time()
    records = await app.store.load_tokens()
    fresh = [r for r in records if isinstance(r.state, Acquired) and r.state.expires_at > now]
    return cpu, wall, counted, len(fresh)


async def run(count: int, work: Path) -> None:
    sandbox = start_sandbox(work / "sandbox")
    try:
        ready = sandbox.ready
        with SandboxControl.of(ready) as control:
            control.config(device_interval=1, rotate_refresh_tokens=False)
            home = work / "home"
            async with open_app(home, {**os.environ, "TOKENPOST_HOME": str(home)}) as app:
                grant = await acquire(
                    app, ready.issuer, ready.ca_file, ready.clients.public, control
                )
                assert grant.refresh_token is not None
                refresh = grant.refresh_token.reveal()
                started = time.perf_counter()
                n = len(await expired_tokens(app, work, count, grant))
                print(f"  {n} expired tokens written in {time.perf_counter() - started:.1f} s")
                first = await baseline(ready, refresh, BASELINE_REQUESTS)
                cpu, wall, counted, fresh = await one_pass(app, control)
                second = await baseline(ready, refresh, BASELINE_REQUESTS)
    finally:
        sandbox.stop()
    if counted != n or fresh != n:
        raise SystemExit(f"{n} tokens: {counted} refresh grants at the sandbox, {fresh} fresh")
    # Per request, the mean of the loops before and after the pass.
    base = (first[0] + second[0]) / (2 * BASELINE_REQUESTS)
    base_wall = (first[1] + second[1]) / (2 * BASELINE_REQUESTS)
    print(
        f"bare httpx POST loop     {base * 1e3:6.2f} ms CPU, {base_wall * 1e3:6.2f} ms wall"
        f" per request ({BASELINE_REQUESTS} before the pass and {BASELINE_REQUESTS} after)"
    )
    print(
        f"one scheduler pass       {cpu / n * 1e3:6.2f} ms CPU per refresh ({cpu:.1f} s in"
        f" all); wall {wall:.1f} s for {n} tokens ({base_wall * n:.1f} s at the baseline's"
        " pace, one at a time)"
    )
    print(f"refresh grants at the sandbox: {counted}, one per token; all {n} fresh")
    print(f"CPU ratio {cpu / n / base:.2f}x (target <= 1.5x)")


BASELINE_REQUESTS = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.count, Path(tmp)))


if __name__ == "__main__":
    main()
