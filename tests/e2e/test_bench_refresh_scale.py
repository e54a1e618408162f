"""bench/refresh_scale.py runs end to end on a small home (the sandbox, one scheduler pass that
refreshes every token, the count checked at the sandbox) and prints every figure, so the
benchmark cannot rot between the times someone measures with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "refresh_scale.py"


def test_the_refresh_scale_benchmark_runs_and_counts_one_grant_per_token() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--count", "20"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refresh grants at the sandbox: 21, one per token; all 21 fresh" in done.stdout
    assert re.search(r"bare httpx POST loop +\d+\.\d\d ms CPU", done.stdout), done.stdout
    assert re.search(r"CPU ratio \d+\.\d\dx", done.stdout), done.stdout
