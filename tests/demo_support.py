"""`tokenpost demo` as a real process, as a newcomer runs it, and what it printed.

run = DemoRun.start()                  # waits for the demo's printout
run.url, run.admin_password, run.demo_password, run.directory
run.control().config(device_interval=1)
run.cli("admin", "add", "viewer", "--viewer", "--password", "-", stdin="…")
run.acquire("smtp")                    # token get, approved through the control API
run.stop(signal.SIGINT)                # returns the exit status
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_support import Ready, SandboxControl

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0

_PRINTOUT = {
    "directory": re.compile(r"Everything is in (\S+);"),
    "url": re.compile(r"Web page:\s+(\S+)"),
    "admin": re.compile(r"Sign in as:\s+(\S+) / (\S+)"),
    "demo": re.compile(r"Provider's sign-in:\s+(\S+) / (\S+)"),
}


@dataclass
class DemoRun:
    """A running `tokenpost demo --listen 127.0.0.1:0` and what it printed."""

    process: subprocess.Popen[str]
    directory: Path
    url: str
    admin: str
    admin_password: str
    demo_user: str
    demo_password: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, *extra: str) -> DemoRun:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
        env |= {"TOKENPOST_LANG": "en", "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONWARNINGS", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", "demo", "--listen", "127.0.0.1:0", *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        out_lines: list[str] = []
        err_lines: list[str] = []
        arrived: queue.Queue[str | None] = queue.Queue()

        def read(stream: Any, into: list[str], announce: bool) -> None:
            for line in stream:
                into.append(line)
                if announce:
                    arrived.put(line)
            if announce:
                arrived.put(None)

        readers = [
            threading.Thread(target=read, args=(process.stdout, out_lines, True), daemon=True),
            threading.Thread(target=read, args=(process.stderr, err_lines, False), daemon=True),
        ]
        for reader in readers:
            reader.start()
        found: dict[str, tuple[str, ...]] = {}
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(found) < len(_PRINTOUT):
            try:
                line = arrived.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                process.kill()
                process.wait()
                for reader in readers:
                    reader.join(timeout=5)
                _close(process)
                raise AssertionError("tokenpost demo did not start:\n" + "".join(err_lines))
            for key, pattern in _PRINTOUT.items():
                match = pattern.search(line)
                if match:
                    found[key] = match.groups()
        return cls(
            process=process,
            directory=Path(found["directory"][0]),
            url=found["url"][0].rstrip("/"),
            admin=found["admin"][0],
            admin_password=found["admin"][1],
            demo_user=found["demo"][0],
            demo_password=found["demo"][1],
            stdout=out_lines,
            stderr=err_lines,
            readers=readers,
        )

    @property
    def home(self) -> Path:
        return self.directory / "home"

    @property
    def ready(self) -> Ready:
        return Ready.load(self.directory / "authserver" / "ready.json")

    def control(self) -> SandboxControl:
        return SandboxControl.of(self.ready)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run tokenpost on the demo's home, as its printout tells a newcomer."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
        env |= {
            "TOKENPOST_HOME": str(self.home),
            "TOKENPOST_CA_FILE": str(self.ready.ca_file),
            "TOKENPOST_LANG": "en",
        }
        result = subprocess.run(
            [sys.executable, "-m", "tokenpost", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        self.stdout.append(result.stdout)
        self.stderr.append(result.stderr)
        return result

    def acquire(self, setting: str) -> None:
        """`token get SETTING --json --yes` on the demo's home, approved through the sandbox's
        control API (for tests whose subject is not getting the token)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
        env |= {
            "TOKENPOST_HOME": str(self.home),
            "TOKENPOST_CA_FILE": str(self.ready.ca_file),
            "TOKENPOST_LANG": "en",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", "token", "get", setting, "--json", "--yes"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        with self.control() as control:
            control.config(device_interval=1)
            for line in process.stdout:
                if line.startswith("{") and "user_code" in line:
                    control.approve(json.loads(line)["user_code"], user=self.demo_user)
                    break
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, (setting, out, err)

    def state(self, setting: str) -> str:
        """The setting's token state id, from `token status --json`."""
        result = self.cli("token", "status", setting, "--json")
        rows = json.loads(result.stdout)["settings"]
        return str(rows[0]["state"])

    def descendants(self) -> list[int]:
        """Every process whose parent chain leads to the demo (from /proc)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
        found: list[int] = []
        todo = [self.process.pid]
        while todo:
            pid = todo.pop()
            children = [child for child, parent in parents.items() if parent == pid]
            found += children
            todo += children
        return found

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Send `signum` (Ctrl-C by default), wait for the demo to end; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("tokenpost demo did not stop in time") from None
        finally:
            for reader in self.readers:
                reader.join(timeout=5)
            _close(self.process)

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


def _close(process: subprocess.Popen[str]) -> None:
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
