"""Cost against the number of settings, in one run: homes of 1, 100 and 1,000 POP settings (and
whatever --sizes lists), each POP setting and the SMTP setting holding an Acquired token that
expires in an hour (so nothing is due), written through the store API.

For each size:
- `pop add` of one more setting (the `tokenpost` command, wall time, median of --runs), and its
  ratio to the smallest home's. Target (issue 10): <= 1.5x at 10,000.
- `token status --json` (wall time, median). Target: <= 0.5 s at 10,000.
- `pop list` (wall time, median), and its ratio to `token status`. Target: <= 1.2x.
- A scheduler pass with nothing due (`Scheduler.tick`, in-process, CPU time by
  `time.process_time`, median of --runs): a scheduler's first, which reads and resolves every
  setting and token; one after another process changed one token, which reads the plan again;
  and the next, on an unchanged store. Target: <= 0.2 s at 10,000.

    .venv/bin/python bench/scale.py [--sizes 1,100,1000] [--runs 5]
    .venv/bin/python bench/scale.py --quick     # sizes 1 and 20, one run: checks that it works

Building a home of 10,000 settings takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path

from startup import timed  # bench/startup.py: a command's wall time, its exit checked

from tokenpost.secret import Secret
from tokenpost.services.targets import load_target
from tokenpost.settings.model import (
    AuthMethod,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.tokens.state import Acquired
from tokenpost.wiring import open_app

TOKENPOST = Path(sys.executable).with_name("tokenpost")


async def build(home: Path, size: int) -> None:
    """A Microsoft provider, the SMTP setting and `size` POP settings, each with a token."""
    env = {**os.environ, "TOKENPOST_HOME": str(home)}
    async with open_app(home, env) as app:
        store = app.store
        await store.put_provider(
            Provider("m365", Preset.MICROSOFT, "00000000-0000-0000-0000-000000000000",
                     tenant="contoso.example")
        )  # fmt: skip
        await store.put_smtp(
            SmtpSetting("smtp.office365.com", 587, Security.STARTTLS, 30, "Scanner",
                        "scanner@contoso.example", AuthMethod.OAUTH2, provider="m365",
                        account="scanner@contoso.example")
        )  # fmt: skip
        for n in range(size):
            await store.put_pop(
                PopSetting(f"box{n:05d}", "outlook.office365.com", 995, Security.TLS, 3600,
                           AuthMethod.OAUTH2, str(home.parent / "mail" / f"box{n:05d}"),
                           provider="m365", account=f"box{n:05d}@contoso.example")
            )  # fmt: skip
        now = time.time()
        for setting_id in ["smtp", *(f"pop:box{n:05d}" for n in range(size))]:
            target = await load_target(store, setting_id)
            token = Acquired(Secret("AT-" + setting_id), now + 3600, now, Secret("RT"))
            await store.save_token(setting_id, token, binding=target.binding, expected_version=0)


def pop_add(home: Path, env: dict[str, str], run: int) -> float:
    name = f"added{run:03d}"
    return timed(
        [str(TOKENPOST), "pop", "add", name, "--server", "outlook.office365.com", "--port",
         "995", "--security", "tls", "--check-interval", "300", "--auth", "oauth2",
         "--provider", "m365", "--account", f"{name}@contoso.example", "--deliver-to",
         str(home.parent / "mail" / name)],
        env,
    )  # fmt: skip


async def pass_cpu(home: Path, runs: int) -> tuple[float, float, float]:
    """CPU seconds of a scheduler pass with nothing due (median): the first of a scheduler,
    which reads and resolves every setting and token; one after another process changed one
    token (the plan is read again: only the changed records are decoded and resolved); and the
    next ones, on an unchanged store."""
    env = {**os.environ, "TOKENPOST_HOME": str(home)}
    async with open_app(home, env) as app:
        await app.scheduler().tick()  # imports and connections warm
        first, changed, next_ones = [], [], []
        for _ in range(runs):
            scheduler = app.scheduler()
            first.append(await _cpu(scheduler.tick()))
            await _touch_smtp_token(home, env)
            changed.append(await _cpu(scheduler.tick()))
            next_ones.append(await _cpu(scheduler.tick()))
    return statistics.median(first), statistics.median(changed), statistics.median(next_ones)


async def _cpu(work: Awaitable[object]) -> float:
    start = time.process_time()
    await work
    return time.process_time() - start


async def _touch_smtp_token(home: Path, env: dict[str, str]) -> None:
    """Write the SMTP token again, a little later expiry, from another store (as another
    process would): the store's revision changes."""
    async with open_app(home, env) as other:
        record = await other.store.load_token("smtp")
        assert isinstance(record.state, Acquired)
        later = replace(record.state, expires_at=record.state.expires_at + 1)
        await other.store.save_token(
            "smtp", later, binding=record.binding, expected_version=record.version
        )


def measure(size: int, runs: int, work: Path) -> dict[str, float]:
    home = work / f"home{size}" / "home"
    home.parent.mkdir(parents=True)
    started = time.perf_counter()
    asyncio.run(build(home, size))
    print(f"  {size:>6} settings: built in {time.perf_counter() - started:.1f} s", flush=True)
    env = {**os.environ, "TOKENPOST_HOME": str(home), "TOKENPOST_LANG": "en"}
    status = [str(TOKENPOST), "token", "status", "--json"]
    listing = [str(TOKENPOST), "pop", "list"]
    passes = asyncio.run(pass_cpu(home, runs))
    return {
        "status": statistics.median(timed(status, env) for _ in range(runs)),
        "list": statistics.median(timed(listing, env) for _ in range(runs)),
        **dict(zip(("first_pass", "changed_pass", "pass"), passes, strict=True)),
        "add": statistics.median(pop_add(home, env, run) for run in range(runs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [1, 20] if args.quick else [int(s) for s in args.sizes.split(",")]
    runs = 1 if args.quick else args.runs
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            results[size] = measure(size, runs, Path(tmp))
    base = results[sizes[0]]
    print(f"settings | pop add (x {sizes[0]}) | token status --json | pop list (x status)"
          " | pass with nothing due, CPU: first, after a change, next")  # fmt: skip
    for size, f in results.items():
        print(
            f"{size:>8} | {f['add'] * 1000:7.0f} ms ({f['add'] / base['add']:.2f}x)"
            f" | {f['status'] * 1000:7.0f} ms"
            f" | {f['list'] * 1000:7.0f} ms ({f['list'] / f['status']:.2f}x)"
            f" | {f['first_pass'] * 1000:8.1f} ms, {f['changed_pass'] * 1000:6.1f} ms,"
            f" {f['pass'] * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
