"""Running the real `tokenpost` CLI as a subprocess, as an administrator would."""

from __future__ import annotations

import contextlib
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

from sandbox_support import Sandbox

SCOPE = "mail.send offline_access"
ACCOUNT = "alice@example.test"


@dataclass
class Cli:
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # everything any run printed

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
        env.update({"TOKENPOST_HOME": str(self.home), "TOKENPOST_LANG": "en"})
        env.update(self.extra_env)
        return env

    def run(
        self, *args: str, stdin: str = "", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tokenpost", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def ok(self, *args: str, stdin: str = "") -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, (
            f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def spawn(self, *args: str) -> Spawned:
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )
        return Spawned(process, self)

    def spawn_interactive(self, *args: str) -> Spawned:
        """Like `spawn`, with standard input kept open for `Spawned.type_line`."""
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )
        return Spawned(process, self)

    def spawn_with_input(self, *args: str, stdin: str) -> Spawned:
        """Like `spawn`, with answers for the command's prompts on standard input."""
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenpost", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
        return Spawned(process, self)

    def status(self) -> dict[str, dict[str, Any]]:
        """`token status --json` by setting id; exit 3 (a token serves no mail) is expected."""
        result = self.run("token", "status", "--json")
        assert result.returncode in (0, 3), (result.returncode, result.stdout, result.stderr)
        data = json.loads(result.stdout)
        assert data["format_version"] == 1
        rows = {row["id"]: row for row in data["settings"]}
        in_force = all(row["in_force"] is not False for row in rows.values())
        assert result.returncode == (0 if in_force else 3), (result.returncode, rows)
        return rows

    def add_sandbox_provider(
        self, sandbox: Sandbox, *extra: str, name: str = "sbx", client_id: str | None = None
    ) -> None:
        self.ok(
            "provider", "add", name, "--preset", "generic", "--issuer", sandbox.issuer,
            "--client-id", client_id or sandbox.clients.public, "--ca-file", str(sandbox.ca_file),
            "--scope", SCOPE, *extra,
        )  # fmt: skip

    def set_smtp(self, *extra: str, provider: str = "sbx", account: str = ACCOUNT) -> None:
        self.ok(
            "smtp", "set", "--server", "smtp.example.test", "--port", "587",
            "--security", "starttls", "--timeout", "30", "--sender-name", "Scanner",
            "--sender-address", "scanner@example.test", "--auth", "oauth2",
            "--provider", provider, "--account", account, *extra,
        )  # fmt: skip

    def all_output(self) -> str:
        return "\n".join(self.outputs)


class Spawned:
    """A running CLI whose stdout and stderr lines are collected by threads as they come."""

    def __init__(self, process: subprocess.Popen[str], cli: Cli) -> None:
        self.process = process
        self.cli = cli
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err_lines: queue.Queue[str | None] = queue.Queue()
        self._err_seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._err_seen.append(line)
            self.err_lines.put(line)
        self.err_lines.put(None)

    def type_line(self, line: str) -> None:
        """Write `line` and a line break to the command's standard input (`spawn_interactive`)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for_err_line(self, pattern: re.Pattern[str], timeout: float = 30) -> str:
        """The first stderr line matching `pattern` (from those not looked at yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.err_lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no stderr line matching {pattern.pattern} in time") from None
            if line is None:
                raise AssertionError(f"the CLI ended before a stderr line like {pattern.pattern}")
            if pattern.search(line):
                return line

    def next_event(self, timeout: float = 30) -> dict[str, Any]:
        """The next JSON line (QR codes and other text are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no event from the CLI in time") from None
            if line is None:
                raise AssertionError("the CLI closed its output before the expected event")
            self.cli.outputs.append(line)
            if line.startswith("{"):
                return dict(json.loads(line))

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 30) -> str:
        """The first output line matching `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern.pattern} in time") from None
            if line is None:
                raise AssertionError(f"the CLI ended before a line matching {pattern.pattern}")
            self.cli.outputs.append(line)
            if pattern.search(line):
                return line

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for exit; returns (exit status, stderr)."""
        assert self.process.stderr is not None
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._err_reader.join(timeout=5)
        err = "".join(self._err_seen)
        self.process.stderr.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.cli.outputs.append(err)
        while not self.lines.empty():
            line = self.lines.get()
            if line:
                self.cli.outputs.append(line)
        return self.process.returncode, err

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def acquire_by_device_flow(cli: Cli, sandbox: Sandbox, setting: str = "smtp") -> None:
    """Run `token get --json --yes` and approve it at the sandbox, as an administrator would
    (--yes: a token that still works is replaced without asking)."""
    spawned = cli.spawn("token", "get", setting, "--json", "--yes")
    prompt = spawned.next_event()
    sandbox.control.approve(str(prompt["user_code"]), user=ACCOUNT)
    done = spawned.next_event()
    code, err = spawned.finish()
    assert (code, done["state"]) == (0, "acquired"), err


def leaked_tokens(cli: Cli) -> list[str]:
    """Places where a sandbox token string shows up: store files and every CLI output."""
    found = []
    for path in cli.home.rglob("*"):
        if path.is_file() and (b"sbx_at_" in path.read_bytes() or b"sbx_rt_" in path.read_bytes()):
            found.append(str(path))
    if "sbx_at_" in cli.all_output() or "sbx_rt_" in cli.all_output():
        found.append("CLI output")
    return found
