"""bench/web.py --quick runs end to end (sandbox, serve as a process, wrk, the probe) and prints
every figure, so the benchmark cannot rot between the times someone measures with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "web.py"


def test_the_web_benchmark_runs_and_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "1 SMTP + 9 POP settings" in out
    assert re.search(r"ratio status page / / static: \d+\.\d+", out), out
    assert re.search(r"ratio API /api/v1/status / static: \d+\.\d+", out), out
    assert "store: 10 of 10 tokens refreshed" in out
    assert "sandbox: 10 refresh grants" in out
    assert re.search(r"idle +p99 +[\d.]+ ms", out), out
    assert re.search(r"while refreshing +p99 +[\d.]+ ms", out), out
    assert re.search(r"ratio p99 refreshing / idle: \d+\.\d+", out), out
    assert re.search(r"ratio \d+\.\dx", out), out  # start-up against python3 -c pass
