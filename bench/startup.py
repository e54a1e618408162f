"""Start-up cost: `tokenpost token status` wall time against `python3 -c pass`, in one run.

Target: <= 8x. Both commands run alternately (so machine load affects both alike) with the same
interpreter, on a home that holds an SMTP and a POP setting; the median of each is compared.
tokenpost runs as an administrator runs it: the installed `tokenpost` command.

    .venv/bin/python bench/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `token status` exits 3 when a token is not acquired (none is, here): that is its answer.
ANSWERS = (0, 3)


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode not in ANSWERS:
        raise SystemExit(f"{command}: exit {done.returncode}")
    return elapsed


def prepare(home: Path, env: dict[str, str]) -> None:
    tp = [sys.executable, "-m", "tokenpost"]

    def run(*args: str) -> None:
        subprocess.run([*tp, *args], env=env, check=True, stdout=subprocess.DEVNULL)

    run("provider", "add", "m365", "--preset", "microsoft", "--tenant", "contoso.example",
        "--client-id", "00000000-0000-0000-0000-000000000000")  # fmt: skip
    run("smtp", "set", "--server", "smtp.office365.com", "--port", "587", "--security",
        "starttls", "--timeout", "30", "--sender-name", "Scanner", "--sender-address",
        "scanner@contoso.example", "--auth", "oauth2", "--provider", "m365", "--account",
        "scanner@contoso.example")  # fmt: skip
    run("pop", "add", "fax", "--server", "outlook.office365.com", "--port", "995", "--security",
        "tls", "--check-interval", "300", "--auth", "oauth2", "--provider", "m365",
        "--account", "fax@contoso.example", "--deliver-to", str(home.parent / "fax"))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "TOKENPOST_HOME": str(home), "TOKENPOST_LANG": "en"}
        prepare(home, env)
        script = Path(sys.executable).with_name("tokenpost")
        status = [str(script), "token", "status"]
        baseline = [sys.executable, "-c", "pass"]
        timed(status, env)  # warm the page cache and .pyc files for both
        timed(baseline, env)
        ours, base = [], []
        for _ in range(args.runs):
            ours.append(timed(status, env))
            base.append(timed(baseline, env))
    m_ours, m_base = statistics.median(ours), statistics.median(base)
    print(f"python3 -c pass        median {m_base * 1000:7.1f} ms  ({args.runs} runs)")
    print(f"tokenpost token status median {m_ours * 1000:7.1f} ms  ({args.runs} runs)")
    print(f"ratio {m_ours / m_base:.2f}x (target <= 8x)")


if __name__ == "__main__":
    main()
