"""bench/scale.py --quick runs end to end (homes built through the store API, the `tokenpost`
command, a scheduler pass in-process) and prints a row of figures per size, so the benchmark
cannot rot between the times someone measures with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"
ROW = (
    r" +{size} \| +\d+ ms \(\d+\.\d+x\) \| +\d+ ms \| +\d+ ms \(\d+\.\d+x\)"
    r" \| +\d+\.\d ms, +\d+\.\d ms, +\d+\.\d ms"
)


def test_the_scale_benchmark_runs_and_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for size in (1, 20):
        assert re.search(ROW.format(size=size), done.stdout), done.stdout
