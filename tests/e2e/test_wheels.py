"""What each wheel of this repository holds: tokenpost's ships no sandbox code and needs none of
the test peers' libraries; the sandbox's holds only the sandbox and requires tokenpost.

Both are built with hatchling's build API (the backend both pyproject.toml files name), in a
subprocess whose working directory is the project's root, into a temporary directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
TEST_PEER_LIBRARIES = ("flask", "werkzeug", "authlib", "aiosmtpd", "trustme", "tokenpost-sandbox")


def build_wheel(project: Path, out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out / done.stdout.strip().splitlines()[-1]


def requirements(wheel: zipfile.ZipFile, *, extras: bool) -> set[str]:
    """The project names in the wheel's Requires-Dist (with or without those of extras)."""
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    found = set()
    for line in wheel.read(metadata).decode("utf-8").splitlines():
        if line.startswith("Requires-Dist:") and (extras or "extra ==" not in line):
            requirement = line.removeprefix("Requires-Dist:").strip()
            name = re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0]
            found.add(name.lower().replace("_", "-"))
    return found


def test_the_product_wheel_holds_no_sandbox(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(ROOT, tmp_path)) as wheel:
        names = wheel.namelist()
        required = requirements(wheel, extras=False)
        every = requirements(wheel, extras=True)

    assert "tokenpost/__init__.py" in names
    assert "tokenpost/locale/de/LC_MESSAGES/tokenpost.mo" in names
    leaked = [n for n in names if "sandbox" in n.lower()]
    assert leaked == []
    assert required.isdisjoint(TEST_PEER_LIBRARIES)
    # No extra brings Flask back, nor the sandbox's libraries: the demo extra names the sandbox.
    assert {"flask", "werkzeug", "authlib", "aiosmtpd"}.isdisjoint(every)
    assert "tokenpost-sandbox" in every


def test_the_sandbox_wheel_holds_only_the_sandbox(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(ROOT / "sandbox", tmp_path)) as wheel:
        names = wheel.namelist()
        required = requirements(wheel, extras=False)

    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"tokenpost_sandbox"}
    assert "tokenpost_sandbox/__main__.py" in names
    assert {"tokenpost", "authlib", "starlette", "uvicorn", "aiosmtpd", "trustme"} <= required
    assert "flask" not in required
