"""`tokenpost demo` as a newcomer runs it: it starts everything, and Ctrl-C or SIGTERM leaves
nothing behind (no files, no processes, every port free); without the sandbox it says how to
install it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from demo_support import DemoRun

pytestmark = pytest.mark.slow


def listening_ports(run: DemoRun) -> list[int]:
    """The web page's port and every port the sandbox's servers listen on."""
    ports = [int(run.url.rsplit(":", 1)[1])]
    auth = json.loads((run.directory / "authserver" / "ready.json").read_text())
    ports.append(int(auth["issuer"].rsplit(":", 1)[1]))
    smtp = json.loads((run.directory / "smtp" / "ready.json").read_text())
    ports += [int(smtp["starttls_port"]), int(smtp["tls_port"])]
    for ready in run.directory.glob("pop-*/ready.json"):
        pop = json.loads(ready.read_text())
        ports += [int(pop["port"]), int(pop["tls_port"])]
    return ports


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        # SO_REUSEADDR: a connection in TIME_WAIT does not count, a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_demo_removes_everything_it_made(signum: int) -> None:
    run = DemoRun.start()
    try:
        assert run.directory.is_dir()
        assert run.directory.stat().st_mode & 0o777 == 0o700
        processes = run.descendants()
        ports = listening_ports(run)
        assert len(processes) >= 5  # authorization, SMTP and two POP3 servers, and serve
        assert len(ports) == 8
        assert not any(port_free(port) for port in ports)
        status = run.cli("token", "status", "--json")
        ids = [row["id"] for row in json.loads(status.stdout)["settings"]]
        assert ids == ["smtp", "pop:fax", "pop:office"]
    finally:
        code = run.stop(signum)
    assert code == 0, run.output()
    assert not run.directory.exists()
    assert [pid for pid in processes if alive(pid)] == []
    assert [port for port in ports if not port_free(port)] == []
    assert f"stopped; removed {run.directory}" in "".join(run.stdout)
    assert "Traceback" not in run.output()


def test_without_the_sandbox_it_says_how_to_install_it(tmp_path: Path) -> None:
    # A package of that name that cannot be imported stands in for a missing one.
    shadow = tmp_path / "shadow" / "tokenpost_sandbox"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    before = set(Path(tempfile.gettempdir()).glob("tokenpost-demo-*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
    env |= {"PYTHONPATH": str(shadow.parent), "TOKENPOST_LANG": "en"}
    result = subprocess.run(
        [sys.executable, "-m", "tokenpost", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'tokenpost[demo]'" in result.stderr
    assert "scripts/bootstrap" in result.stderr
    assert result.stdout == ""
    assert set(Path(tempfile.gettempdir()).glob("tokenpost-demo-*")) == before
    german = subprocess.run(
        [sys.executable, "-m", "tokenpost", "demo", "--lang", "de"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert german.returncode == 2
    assert "braucht die Sandbox" in german.stderr


def test_a_web_address_off_loopback_is_refused_before_anything_starts() -> None:
    before = set(Path(tempfile.gettempdir()).glob("tokenpost-demo-*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
    result = subprocess.run(
        [sys.executable, "-m", "tokenpost", "--lang", "en", "demo", "--listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "--listen" in result.stderr, result.stderr
    assert set(Path(tempfile.gettempdir()).glob("tokenpost-demo-*")) == before


def test_a_web_port_in_use_stops_the_demo_and_removes_what_it_made() -> None:
    before = set(Path(tempfile.gettempdir()).glob("tokenpost-demo-*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenpost",
                "--lang",
                "en",
                "demo",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "serve did not start; the demo stops." in result.stderr
    assert set(Path(tempfile.gettempdir()).glob("tokenpost-demo-*")) == before


def test_a_server_that_dies_stops_the_demo_and_everything_else() -> None:
    run = DemoRun.start()
    try:
        processes = run.descendants()
        pop = json.loads((run.directory / "pop-office" / "ready.json").read_text())
        os.kill(int(pop["pid"]), signal.SIGKILL)
        code = run.process.wait(timeout=60)
    finally:
        run.stop()
    assert code == 1
    assert "popserver stopped by itself; the demo stops too." in "".join(run.stderr)
    assert not run.directory.exists()
    assert [pid for pid in processes if alive(pid)] == []
