"""The sandbox POP3 server for tests: in-process (same event loop) or as a subprocess.

harness = await start_pop_harness(tmp_path, tokens={"alice@example.test": "tok"})
harness.set_knobs(style=Style.EXCHANGE)
harness.add_message(b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
harness.setting(Security.TLS)                       # a PopSetting pointing at it
await harness.close()

process = start_popserver(directory, maildir, authserver_dir)   # waits for ready.json
process.stop()
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tokenpost.sandbox.popknobs import PopKnobs
from tokenpost.sandbox.popserver import PopServer
from tokenpost.sandbox.tls import write_tls_files
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, PopSetting, Security

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class PopHarness:
    """A `PopServer` in the test's event loop, with TLS files from its own CA."""

    def __init__(self, directory: Path, tokens: Mapping[str, str]) -> None:
        self.directory = directory
        self.maildir = directory / "Maildir"
        self.tls = write_tls_files(directory, now=dt.datetime.now(dt.UTC))
        self.ca_file = self.tls.ca_file
        self.tokens = dict(tokens)
        self.knobs = PopKnobs()
        self.token_checks: list[str] = []
        self.server = PopServer(
            self.maildir, knobs=lambda: self.knobs, check_token=self._check, tls=self.tls
        )
        self.port = 0
        self.tls_port = 0
        self._serial = 0

    async def _check(self, user: str, token: Secret) -> bool:
        self.token_checks.append(user)
        expected = self.tokens.get(user)
        return expected is not None and token == Secret(expected)

    def set_knobs(self, **changes: Any) -> None:
        self.knobs = replace(self.knobs, **changes)

    def add_message(self, content: bytes, *, sub: str = "new") -> Path:
        self._serial += 1
        path = self.maildir / sub / f"{1_700_000_000 + self._serial}.M{self._serial}P1.sandbox"
        path.write_bytes(content)
        return path

    def messages(self) -> list[Path]:
        return sorted(p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir())

    def setting(
        self,
        security: Security,
        *,
        auth: AuthMethod = AuthMethod.OAUTH2,
        ca_file: Path | None = None,
        password: str | None = None,
    ) -> PopSetting:
        port = self.tls_port if security is Security.TLS else self.port
        return PopSetting(
            name="sandbox",
            server="127.0.0.1",
            port=port,
            security=security,
            check_interval=60,
            auth=auth,
            deliver_to=str(self.directory / "delivered"),
            account="alice@example.test",
            password=None if password is None else Secret(password),
            ca_file=str(ca_file or self.ca_file),
        )

    async def close(self) -> None:
        await self.server.close()


async def start_pop_harness(directory: Path, tokens: Mapping[str, str]) -> PopHarness:
    harness = PopHarness(directory, tokens)
    harness.port, tls_port = await harness.server.start()
    assert tls_port is not None
    harness.tls_port = tls_port
    return harness


# --- the subprocess -------------------------------------------------------------------------


class PopserverError(RuntimeError):
    """The POP3 sandbox did not start or stop."""


@dataclass(frozen=True, slots=True)
class PopReady:
    host: str
    port: int
    tls_port: int
    ca_file: Path
    pid: int

    @classmethod
    def load(cls, path: Path) -> PopReady:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(raw["host"], raw["port"], raw["tls_port"], Path(raw["ca_file"]), raw["pid"])


class PopserverProcess:
    def __init__(self, process: subprocess.Popen[bytes], directory: Path, ready: PopReady) -> None:
        self.process = process
        self.directory = directory
        self.ready = ready
        self.log_path = directory / "popserver.log"

    def set_knobs(self, **knobs: object) -> None:
        path = self.directory / "knobs.json"
        temporary = path.with_name(".knobs.json.tmp")
        temporary.write_text(json.dumps(knobs), encoding="utf-8")
        os.replace(temporary, path)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_popserver(
    directory: Path, maildir: Path, authserver_dir: Path | None = None
) -> PopserverProcess:
    """`python -m tokenpost.sandbox popserver`, waiting for its ready.json."""
    directory.mkdir(parents=True, exist_ok=True)
    ready_path = directory / "ready.json"
    ready_path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "tokenpost.sandbox", "popserver"]
    command += ["--dir", str(directory), "--maildir", str(maildir)]
    if authserver_dir is not None:
        command += ["--authserver-dir", str(authserver_dir)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    with (directory / "popserver.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready_path.exists():
            ready = PopReady.load(ready_path)
            if ready.pid == process.pid:
                return PopserverProcess(process, directory, ready)
        if process.poll() is not None:
            log_text = (directory / "popserver.log").read_text(errors="replace")
            raise PopserverError(f"popserver exited with {process.returncode}:\n{log_text}")
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise PopserverError("popserver did not get ready")
